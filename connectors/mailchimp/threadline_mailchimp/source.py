"""The `mailchimp` source: audiences, members (with consent status) and member activity from
the Mailchimp Marketing API 3.0, declared on the HTTP kit.

Members live under each audience (`/lists/{list_id}/members`): the stream fans out over the
audiences, and member activity over the members. Member fields are nested
(`merge_fields.FNAME`, `tags[].name`): columns are paths into them, read in bulk.
`since_last_changed` is documented as "changed after", so the cursor is sent one second early
(`cursor_exclusive`) to keep the engine's inclusive contract.
"""

from __future__ import annotations

from pydantic import Field

from threadline.http import (
    Column, Fixed, FromParent, HttpClient, OffsetPaginator, RestSource, RestStream, SinglePage, schema_from_mapping,
)
from threadline_mailchimp.client import BASE_URL_HINT, MailchimpCredentials, api_root, mailchimp_client

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+00:00"

LISTS_SCHEMA = schema_from_mapping({
    "id": "string", "web_id": "int64", "name": "string", "date_created": "timestamp", "double_optin": "bool",
    "visibility": "string", "permission_reminder": "string", "from_email": "string",
    "member_count": "int64", "unsubscribe_count": "int64", "cleaned_count": "int64",
})
LISTS_COLUMNS = {
    "from_email": "campaign_defaults.from_email", "member_count": "stats.member_count",
    "unsubscribe_count": "stats.unsubscribe_count", "cleaned_count": "stats.cleaned_count",
}

MEMBERS_SCHEMA = schema_from_mapping({
    "list_id": "string", "id": "string", "email_address": "string", "unique_email_id": "string",
    "contact_id": "string", "full_name": "string", "first_name": "string", "last_name": "string",
    "phone": "string", "country_code": "string", "language": "string",
    "status": "string", "unsubscribe_reason": "string", "last_changed": "timestamp",
    "timestamp_signup": "timestamp", "timestamp_opt": "timestamp", "ip_opt": "string",
    "consents_to_one_to_one_messaging": "bool", "email_type": "string",
    "tags": "list<string>", "member_rating": "int64", "vip": "bool", "source": "string", "merge_fields": "json",
})
MEMBERS_COLUMNS = {
    "first_name": Column("merge_fields.FNAME", blank_is_null=True),
    "last_name": Column("merge_fields.LNAME", blank_is_null=True),
    "phone": Column("merge_fields.PHONE", blank_is_null=True),
    "country_code": Column("location.country_code", blank_is_null=True),
    "language": Column("language", blank_is_null=True),
    "tags": "tags[].name",
}

ACTIVITY_SCHEMA = schema_from_mapping({
    "list_id": "string", "email_id": "string", "action": "string", "timestamp": "timestamp",
    "campaign_id": "string", "title": "string", "type": "string", "url": "string",
})


class MailchimpConfig(MailchimpCredentials):
    base_url: str | None = Field(None, description="Override of https://<dc>.api.mailchimp.com/3.0 (the sandbox's URL + /3.0).")
    list_ids: list[str] = Field(default_factory=list, description="Read only these audiences (default: every one).")
    page_size: int = Field(500, ge=1, le=1000, description="Records per page (`count`; Mailchimp allows up to 1000).")
    backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles on each retry.")
    max_rate_limit_wait: float = Field(
        300.0, gt=0, description="Longest this run waits out a rate limit or retries; a longer window stops the "
                                 "stream cleanly with its state saved and the time to resume.")


class MailchimpSource(RestSource[MailchimpConfig]):
    """Audiences, members and member activity from the Mailchimp Marketing API."""

    name = "mailchimp"
    spec = MailchimpConfig
    vendor = "Mailchimp"
    base_url_hint = BASE_URL_HINT

    def api_root(self, config: MailchimpConfig) -> str:
        return api_root(config, self.name)

    def client(self, config: MailchimpConfig) -> HttpClient:
        return mailchimp_client(config, self.name)

    def streams(self, config: MailchimpConfig) -> list[RestStream]:
        pages = OffsetPaginator(limit=config.page_size, offset_param="offset", limit_param="count",
                                total_path="total_items")
        lists = RestStream(name="lists", path="/lists", records_path="lists", schema=LISTS_SCHEMA, columns=LISTS_COLUMNS,
                           primary_key=("id",), paginator=pages, description="Audiences (lists).")
        audiences = (Fixed(items=[{"list_id": i} for i in config.list_ids], field="list_ids", noun="audience (list)")
                     if config.list_ids else
                     FromParent(stream=lists, keys_from={"list_id": "id"}, label="name", noun="audience (list)"))
        members = RestStream(
            name="members", path="/lists/{list_id}/members", records_path="members", schema=MEMBERS_SCHEMA,
            columns=MEMBERS_COLUMNS, primary_key=("list_id", "id"), paginator=pages, partitions=audiences,
            cursor_field="last_changed", cursor_param="since_last_changed", cursor_exclusive=True,
            cursor_format=TIME_FORMAT,  # sorted within an audience, not across audiences: unsorted
            # every member carries a dozen `_links` (HATEOAS): not needed, and most of the bytes
            params={"sort_field": "last_changed", "sort_dir": "ASC", "exclude_fields": "members._links,_links"},
            description="Members of every audience, with their consent status.",
        )
        member_ids = RestStream(name="members", path=members.path, records_path="members", schema=MEMBERS_SCHEMA,
                                paginator=pages, partitions=audiences, params={"fields": "members.id,total_items"})
        activity = RestStream(
            name="member_activity", path="/lists/{list_id}/members/{email_id}/activity", records_path="activity",
            schema=ACTIVITY_SCHEMA, primary_key=("list_id", "email_id", "action", "timestamp"), paginator=SinglePage(),
            partitions=FromParent(stream=member_ids, keys_from={"list_id": "list_id", "email_id": "id"}, noun="member"),
            min_batch_rows=1000,  # one request per member: gather their few events into larger batches
            description="The last 50 events of each member (opens, clicks, bounces, sends).",
        )
        return [members, lists, activity]

    def probes(self, config: MailchimpConfig) -> list[RestStream]:
        """The audiences, and the members of the audiences the config names."""
        streams = {s.name: s for s in self.streams(config)}
        return [streams["lists"], *([streams["members"]] if config.list_ids else [])]
