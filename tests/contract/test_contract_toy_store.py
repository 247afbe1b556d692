"""The destination contract suite passes for a correct destination (the toy JSON store)."""

from contract_toy_store import ToyStore, ToyStoreContract


class TestToyStore(ToyStoreContract):
    destination = ToyStore
