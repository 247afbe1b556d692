"""The `rest` source under the source contract suite, against the customers sandbox."""

from threadline.sandbox import CustomersSandbox
from threadline.testing import SourceContract
from threadline_rest import RestApiSource


class TestRestContract(SourceContract):
    source = RestApiSource
    sandbox = CustomersSandbox
    sandbox_options = {"count": 40}
    bad_config = {"base_url": "http://127.0.0.1:9"}
    credential_field = "auth.token"
    data_path = "/customers"

    def config(self, sandbox):
        return {
            "base_url": sandbox.base_url,
            "auth": {"type": "bearer", "token": sandbox.TOKEN},
            "paginator": {"type": "offset", "limit": 10, "total_path": "total"},
            "retry": {"max_attempts": 4, "backoff_base": 0.01, "max_retry_time": 10},
            "streams": [{
                "name": "customers", "path": "/customers", "primary_key": ["id"],
                "cursor": {"field": "updated_at", "param": "updated_since", "sorted": True},
                "schema": {
                    "id": "int64", "email": "string", "first_name": "string", "last_name": "string",
                    "phone": "string", "lifetime_value": "decimal(18,2)",
                    "address": "struct<city: string, postcode: string>", "tags": "list<string>",
                    "updated_at": "timestamp",
                },
            }],
        }

    def expected_records(self, sandbox):
        return {"customers": sandbox.customers}

    def change(self, sandbox):
        return {"customers": sandbox.add_customers(3) + sandbox.update_customers([2, 5])}
