"""Registers the two Google Customer Match destinations and their sandbox (entry point `threadline`).

Names are registered by import path: the modules behind them are imported only when a
command uses them (so `threadline --help` imports none of them).
"""

from threadline import hookimpl


@hookimpl
def register_audience_destinations(register):
    register("google_data_manager", "threadline_google_customer_match.data_manager:GoogleDataManager")
    register("google_customer_match", "threadline_google_customer_match.customer_match:GoogleCustomerMatch")


@hookimpl
def register_sandboxes(register):
    register("google_customer_match", "threadline_google_customer_match.sandbox:GoogleSandbox")
