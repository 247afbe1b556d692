"""threadline audience destinations for Google Customer Match: `google_data_manager` (the Data
Manager API, the default for new integrations) and `google_customer_match` (the Google Ads
API's offline user data jobs), with one sandbox serving both."""

from threadline_google_customer_match.customer_match import CustomerMatchSpec, GoogleCustomerMatch
from threadline_google_customer_match.data_manager import DataManagerSpec, GoogleDataManager

__all__ = ["CustomerMatchSpec", "DataManagerSpec", "GoogleCustomerMatch", "GoogleDataManager"]
