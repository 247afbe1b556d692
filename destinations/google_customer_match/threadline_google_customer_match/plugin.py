"""Registers the two Google Customer Match destinations and their sandbox (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_destinations(register):
    register("google_data_manager", "threadline_google_customer_match.data_manager:GoogleDataManager", audiences=True)
    register("google_customer_match", "threadline_google_customer_match.customer_match:GoogleCustomerMatch", audiences=True)


@hookimpl
def register_sandboxes(register):
    register("google_customer_match", "threadline_google_customer_match.sandbox:GoogleSandbox")
