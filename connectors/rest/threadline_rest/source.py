"""The `rest` source: a `RestSource` whose streams come from the job file."""

from __future__ import annotations

from threadline.http import HttpClient, RequestBudget, RestSource, RestStream

from threadline_rest.config import RestConfig


class RestApiSource(RestSource[RestConfig]):
    """Any simple JSON API, declared in the job file (see `threadline_rest.config`)."""

    name = "rest"
    spec = RestConfig

    def __init__(self) -> None:
        # One request budget per configured API, shared by all its streams' reads.
        self._budgets: dict[int, tuple[RestConfig, RequestBudget | None]] = {}

    def client(self, config: RestConfig) -> HttpClient:
        if id(config) not in self._budgets:
            self._budgets[id(config)] = (config, config.budget())  # config kept so its id stays unique
        return HttpClient(
            config.base_url, auth=config.auth.build(config.base_url), retry=config.retry.build(),
            budget=self._budgets[id(config)][1], timeouts=config.timeouts(), headers=config.headers,
            connector=self.name,
        )

    def streams(self, config: RestConfig) -> list[RestStream]:
        return [
            RestStream(
                name=s.name, path=s.path, schema=s.schema_, records_path=s.records_path,
                primary_key=tuple(s.primary_key),
                cursor_field=s.cursor.field if s.cursor else None,
                cursor_param=s.cursor.param if s.cursor else None,
                cursor_sorted=s.cursor.sorted if s.cursor else False,
                cursor_format=s.cursor.format if s.cursor else None,
                paginator=(s.paginator or config.paginator).build(),
                params=s.params,
            )
            for s in config.streams
        ]
