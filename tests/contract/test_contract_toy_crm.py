"""The source contract suite passes for a correct source (the toy CRM over CustomersSandbox)."""

from contract_toy_crm import ToyCrmContract, ToyCrmSource


class TestToyCrm(ToyCrmContract):
    source = ToyCrmSource
