"""The canary judge, pure, in the order a verdict is made: ``classifier`` classifies one metric as
Kayenta's Mann–Whitney classifier does (with ``mannwhitney``'s interval, found by ``brent``),
``scoring`` scores the classified metrics as Kayenta's judge does, and ``decision`` turns the score
into what the rollout does next."""
