"""Local simulation: everything that stands in for AWS and for the instances on one machine.

- ``endpoint``: moto's server on 127.0.0.1 as a managed background process (`imagefleet local up`);
  ``moto_server`` is that process's entry point, ``memory`` what the store remembers of it.
- ``agents``: the local agent runner; the areas register their handlers (``register``), the core
  never imports them.
- ``injection``, ``faults``, ``faultproxy``: FAULT INJECTION, explicit and labelled: a base made
  worse on chosen instance types, and a proxy that throttles, fails and drops AWS calls.
- ``processes``: the background processes imagefleet starts, signalled only while still theirs.

Nothing on the product path imports this package except to reach the endpoint's URL.
"""
