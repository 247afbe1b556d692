"""The `mailchimp` source: audiences, members (with consent status), member activity and
campaign reports (what each campaign sent, to whom, and what they did with it) from the
Mailchimp Marketing API 3.0, declared on the HTTP kit.

Members live under each audience (`/lists/{list_id}/members`): the stream fans out over the
audiences, and member activity over the members. Member fields are nested
(`merge_fields.FNAME`, `tags[].name`): columns are paths into them, read in bulk.
`since_last_changed` is documented as "changed after", so the cursor is sent one second early
(`cursor_exclusive`) to keep the engine's inclusive contract.

A campaign's recipients, activity and unsubscribes live under its report
(`/reports/{campaign_id}/sent-to`): those streams fan out over the campaign reports.
Email activity nests each recipient's actions in a list; it is flattened to one row per action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from threadline.http import (
    Column, Fixed, FromParent, HttpClient, OffsetPaginator, RestSource, RestStream, SinglePage, schema_from_mapping,
)
from threadline.http.records import PageParser, ParsedPage
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

# `fields`: the member fields the columns are read from (top-level, as Mailchimp's dot paths) and the total
MEMBER_FIELDS = ",".join([*(f"members.{key}" for key in sorted(
    {(spec.path if isinstance(spec, Column) else spec).split(".")[0].removesuffix("[]")
     for spec in (MEMBERS_COLUMNS.get(f.name, f.name) for f in MEMBERS_SCHEMA)})), "total_items"])

ACTIVITY_SCHEMA = schema_from_mapping({
    "list_id": "string", "email_id": "string", "action": "string", "timestamp": "timestamp",
    "campaign_id": "string", "title": "string", "type": "string", "url": "string",
})

REPORTS_SCHEMA = schema_from_mapping({
    "id": "string", "campaign_title": "string", "type": "string", "list_id": "string", "list_name": "string",
    "subject_line": "string", "send_time": "timestamp", "emails_sent": "int64", "abuse_reports": "int64",
    "unsubscribed": "int64", "hard_bounces": "int64", "soft_bounces": "int64", "syntax_errors": "int64",
    "opens_total": "int64", "unique_opens": "int64", "open_rate": "float64", "last_open": "timestamp",
    "clicks_total": "int64", "unique_clicks": "int64", "unique_subscriber_clicks": "int64", "click_rate": "float64",
    "last_click": "timestamp",
})
REPORTS_COLUMNS = {
    **{k: f"bounces.{k}" for k in ("hard_bounces", "soft_bounces", "syntax_errors")},
    **{k: f"opens.{k}" for k in ("opens_total", "unique_opens", "open_rate")},
    **{k: f"clicks.{k}" for k in ("clicks_total", "unique_clicks", "unique_subscriber_clicks", "click_rate")},
    "last_open": Column("opens.last_open", blank_is_null=True), "last_click": Column("clicks.last_click", blank_is_null=True),
}

SENT_TO_SCHEMA = schema_from_mapping({
    "campaign_id": "string", "list_id": "string", "email_id": "string", "email_address": "string",
    "send_time": "timestamp", "status": "string", "open_count": "int64", "last_open": "timestamp", "absplit_group": "string", "vip": "bool",
})
SENT_TO_COLUMNS = {"last_open": Column("last_open", blank_is_null=True),
                   "absplit_group": Column("absplit_group", blank_is_null=True)}

EMAIL_ACTIVITY_SCHEMA = schema_from_mapping({
    "campaign_id": "string", "list_id": "string", "email_id": "string", "email_address": "string",
    "action": "string", "type": "string", "timestamp": "timestamp", "url": "string", "ip": "string",
})
_ACTION_FIELDS = ("action", "type", "timestamp", "url", "ip")
_EMAILS_SCHEMA = schema_from_mapping({
    "campaign_id": "string", "list_id": "string", "email_id": "string", "email_address": "string",
    **{f"activity_{k}": "list<timestamp>" if k == "timestamp" else "list<string>" for k in _ACTION_FIELDS},
})

UNSUBSCRIBES_SCHEMA = schema_from_mapping({
    "campaign_id": "string", "list_id": "string", "email_id": "string", "email_address": "string",
    "timestamp": "timestamp", "reason": "string",
})


@dataclass
class EmailActivityPages(RestStream):
    """A campaign's email activity: each recipient's `activity` list, one row per action."""

    _raw: PageParser | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._raw = PageParser(_EMAILS_SCHEMA, "emails", {f"activity_{k}": f"activity[].{k}" for k in _ACTION_FIELDS})

    def parse_page(self, response: Any) -> ParsedPage:
        assert self._raw is not None
        raw = self._raw(response)
        records = raw.records
        parents = pc.list_parent_indices(records.column("activity_action"))
        columns = [records.column(k).take(parents) for k in ("campaign_id", "list_id", "email_id", "email_address")]
        columns += [pc.list_flatten(records.column(f"activity_{k}")) for k in _ACTION_FIELDS]
        batch = pa.RecordBatch.from_arrays(columns, schema=EMAIL_ACTIVITY_SCHEMA)
        return ParsedPage(batch, raw.body, response, raw.rejected, count=records.num_rows)


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
            # only the fields the columns read: a member also carries a dozen `_links` (HATEOAS), stats,
            # interests, permissions and SMS fields, most of a page's bytes and of the time it takes to parse
            params={"sort_field": "last_changed", "sort_dir": "ASC", "fields": MEMBER_FIELDS},
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
        reports = RestStream(
            name="campaign_reports", path="/reports", records_path="reports", schema=REPORTS_SCHEMA,
            columns=REPORTS_COLUMNS, primary_key=("id",), paginator=pages,
            params={"exclude_fields": "reports._links,_links"},
            description="One report per sent campaign: emails sent, bounces, opens, clicks, unsubscribes.")
        report_ids = RestStream(name="campaign_reports", path="/reports", records_path="reports", schema=REPORTS_SCHEMA,
                                paginator=pages, params={"fields": "reports.id,reports.campaign_title,reports.send_time,"
                                                                   "total_items"})
        campaigns = FromParent(stream=report_ids, keys_from={"campaign_id": "id"}, label="campaign_title", noun="campaign")
        # the send time fills sent_to's `send_time` (a recipient has none of its own); a key that
        # fills no column would be sent as a query parameter, so the other streams go without it
        sends = FromParent(stream=report_ids, keys_from={"campaign_id": "id", "send_time": "send_time"},
                           label="campaign_title", noun="campaign")
        sent_to = RestStream(
            name="sent_to", path="/reports/{campaign_id}/sent-to", records_path="sent_to", schema=SENT_TO_SCHEMA,
            columns=SENT_TO_COLUMNS, primary_key=("campaign_id", "email_id"), paginator=pages, partitions=sends,
            params={"exclude_fields": "sent_to._links,sent_to.merge_fields,_links"},
            description="Every campaign's recipients and whether it reached them (sent, or a hard or soft bounce).")
        email_activity = EmailActivityPages(
            name="email_activity", path="/reports/{campaign_id}/email-activity", records_path="emails",
            schema=EMAIL_ACTIVITY_SCHEMA, primary_key=("campaign_id", "email_id", "action", "timestamp"),
            paginator=pages, partitions=campaigns, params={"exclude_fields": "emails._links,_links"},
            description="What every recipient did with every campaign: opens, clicks, bounces (one row per action).")
        unsubscribes = RestStream(
            name="unsubscribes", path="/reports/{campaign_id}/unsubscribed", records_path="unsubscribes",
            schema=UNSUBSCRIBES_SCHEMA, primary_key=("campaign_id", "email_id"), paginator=pages, partitions=campaigns,
            params={"exclude_fields": "unsubscribes._links,unsubscribes.merge_fields,_links"},
            description="Who unsubscribed from each campaign, when and why.")
        return [members, lists, activity, reports, sent_to, email_activity, unsubscribes]

    def probes(self, config: MailchimpConfig) -> list[RestStream]:
        """The audiences, and the members of the audiences the config names."""
        streams = {s.name: s for s in self.streams(config)}
        return [streams["lists"], *([streams["members"]] if config.list_ids else [])]
