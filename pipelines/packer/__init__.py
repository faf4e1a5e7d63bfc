"""Baking with a team's own Packer template: ``template`` reads it as it is, ``contract`` is
imagefleet's side (the variables it gives, the checks before building), ``run`` runs the packer
binary, ``machine_readable`` parses its ``-machine-readable`` output."""
