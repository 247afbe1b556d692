"""Salesforce under threadline's source contract suite, against its sandbox."""

from threadline.testing import SourceContract
from threadline_salesforce import SalesforceSource
from threadline_salesforce.sandbox import API_VERSION, FIELDS, SalesforceSandbox


def salesforce_config(sandbox, **overrides):
    return {"login_url": sandbox.base_url, "instance_url": sandbox.base_url, "client_id": sandbox.CLIENT_ID,
            "client_secret": sandbox.CLIENT_SECRET, "refresh_token": sandbox.REFRESH_TOKEN, "batch_size": 7,
            "backoff_base": 0.01, **overrides}


class TestSalesforceContract(SourceContract):
    source = SalesforceSource
    sandbox = SalesforceSandbox
    sandbox_options = {"contacts": 25}
    bad_config = {"instance_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9", "objects": ["Contactz"]}
    credential_field = "refresh_token"
    data_path = f"/services/data/{API_VERSION}/query"

    def config(self, sandbox):
        return salesforce_config(sandbox)

    def expected_records(self, sandbox):
        return {obj: sandbox.records(obj) for obj in FIELDS}

    def change(self, sandbox):
        contacts = sandbox.records("Contact")
        cases = sandbox.records("Case")
        return {
            "Contact": sandbox.add_contacts(2) + sandbox.update("Contact", [contacts[1]["Id"]], Email="new@example.com"),
            "Case": sandbox.update("Case", [cases[0]["Id"], cases[4]["Id"]], Status="Closed"),
        }
