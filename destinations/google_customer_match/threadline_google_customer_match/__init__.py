"""threadline audience destinations for Google Customer Match: `google_data_manager` (the Data
Manager API, the default for new integrations) and `google_customer_match` (the Google Ads
API's offline user data jobs), with one sandbox serving both."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["CustomerMatchSpec", "DataManagerSpec", "GoogleCustomerMatch", "GoogleDataManager"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"CustomerMatchSpec": "threadline_google_customer_match.customer_match", "GoogleCustomerMatch": "threadline_google_customer_match.customer_match", "DataManagerSpec": "threadline_google_customer_match.data_manager", "GoogleDataManager": "threadline_google_customer_match.data_manager"})

if TYPE_CHECKING:
    from threadline_google_customer_match.customer_match import CustomerMatchSpec, GoogleCustomerMatch
    from threadline_google_customer_match.data_manager import DataManagerSpec, GoogleDataManager
