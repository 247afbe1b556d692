"""Campaign reports for the Mailchimp sandbox: what each campaign sent, to whom, and what they
did with it, as Mailchimp's Reports API answers it (Marketing API 3.0, "Reports"):

    GET /3.0/reports?count=&offset=&since_send_time=&before_send_time=
                                                  {"reports": [...], "total_items"}
    GET /3.0/reports/{campaign_id}                one report, 404 when unknown
    GET /3.0/reports/{campaign_id}/sent-to?count=&offset=
                                                  {"sent_to": [{"email_id", "email_address", "status": "sent"|"hard"|"soft",
                                                                "open_count", "last_open", ...}], "campaign_id", "total_items"}
    GET /3.0/reports/{campaign_id}/email-activity?count=&offset=&since=
                                                  {"emails": [{"email_id", "email_address", "activity":
                                                               [{"action": "open"|"click"|"bounce", "type", "timestamp",
                                                                 "url", "ip"}]}], "campaign_id", "total_items"}
    GET /3.0/reports/{campaign_id}/unsubscribed?count=&offset=
                                                  {"unsubscribes": [{"email_id", "email_address", "timestamp",
                                                                     "reason"}], "campaign_id", "total_items"}

The campaigns are the newsletter's (every two weeks, `threadline.sandbox.people.CAMPAIGNS`)
and the other audiences' monthly sends. A newsletter goes to everyone subscribed when it is
sent; an address cleaned after a hard bounce is a `hard` recipient with a `bounce`; opens and
clicks are the population's email events, so a person's engagement is the same here as in
member activity; an unsubscribe is credited to the last campaign the person got within two
weeks before it. `send_campaign` sends a new campaign to a tag (a static segment), as a
marketer does after a push, with opens drawn at a given rate.

The report's figures are counted from the recipients: `emails_sent` (every recipient),
`bounces.hard_bounces`, `opens.unique_opens` and `open_rate` (over delivered emails), `clicks`,
`unsubscribed`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from threadline.sandbox import Reply, SandboxError, SandboxRequest
from threadline.sandbox.people import AS_OF, CAMPAIGNS, Person

NEWSLETTER_EVERY = timedelta(days=14)  # an unsubscribe within this long of a send is credited to it


def stamp(moment: datetime) -> str:
    """Mailchimp writes timestamps as ISO 8601 with an explicit +00:00 offset."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


class CampaignReports:
    """The Reports API half of `MailchimpSandbox` (a mixin: it uses the sandbox's members,
    lock, cache, `answer`, `_window` and `problem`)."""

    _members: dict[str, dict[str, dict[str, Any]]]
    _activity: dict[tuple[str, str], list[dict[str, Any]]]

    # ------------------------------------------------------------------ seeding

    def _seed_reports(self, newsletter: str, homes: list[tuple[str, str, Person]]) -> None:
        """Campaigns and their recipients, from the people on each audience (list, hash, person)."""
        self._campaigns: dict[str, dict[str, Any]] = {}
        # campaign -> (list id, email id) -> {"email_address", "status", "activity": [...]}
        self._sends: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._unsubscribes: dict[str, list[dict[str, Any]]] = {}
        for campaign, sent, subject in CAMPAIGNS["mailchimp"]:
            self._add_campaign(campaign, newsletter, subject, sent)
        for lid, h, person in homes:
            if lid == newsletter:
                self._seed_newsletter(lid, h, person)
            else:
                self._seed_from_activity(lid, h)

    def _add_campaign(self, campaign: str, list_id: str, title: str, sent: datetime, type_: str = "regular") -> None:
        self._campaigns.setdefault(campaign, {"id": campaign, "title": title, "list_id": list_id, "send_time": sent,
                                              "type": type_})
        self._sends.setdefault(campaign, {})
        self._unsubscribes.setdefault(campaign, [])

    def _seed_newsletter(self, lid: str, h: str, person: Person) -> None:
        email = self._members[lid][h]["email_address"]
        events = [e for e in person.email_events if e.esp == "mailchimp"]
        got = []
        for campaign, sent, _ in CAMPAIGNS["mailchimp"]:
            mine = [e for e in events if e.campaign_id == campaign]
            bounced = any(e.action == "bounce" for e in mine)
            if person.email_consent.as_of(sent)[0] != "subscribed" and not bounced:
                continue
            self._sends[campaign][(lid, h)] = {
                "email_address": email, "status": "hard" if bounced else "sent",
                "activity": [{"action": e.action, "type": "hard" if e.action == "bounce" else "", "timestamp": stamp(e.at),
                              "url": e.url or "", "ip": "" if e.action == "bounce" else "198.51.100.7"} for e in mine]}
            got.append((sent, campaign))
        for at, status in person.email_consent.history:
            if status != "unsubscribed":
                continue
            last = [c for sent, c in got if sent <= at < sent + NEWSLETTER_EVERY]
            if last:
                self._unsubscribes[last[-1]].append({"list_id": lid, "email_id": h, "email_address": email,
                                                     "timestamp": stamp(at),
                                                     "reason": self._members[lid][h].get("unsubscribe_reason")})

    def _seed_from_activity(self, lid: str, h: str) -> None:
        """Another audience's campaigns, from the member's activity (sends and opens)."""
        email = self._members[lid][h]["email_address"]
        events = self._activity.get((lid, h), [])
        for e in sorted(events, key=lambda e: e["timestamp"]):
            campaign = e["campaign_id"]
            if e["action"] == "sent":
                self._add_campaign(campaign, lid, e["title"], datetime.fromisoformat(e["timestamp"]))
                self._sends[campaign].setdefault((lid, h), {"email_address": email, "status": "sent", "activity": []})
            elif campaign in self._sends and (lid, h) in self._sends[campaign]:
                self._sends[campaign][(lid, h)]["activity"].append(
                    {"action": e["action"], "type": "", "timestamp": e["timestamp"], "url": e["url"], "ip": "198.51.100.7"})

    # ------------------------------------------------------------------ what tests use

    def send_campaign(self, list_id: str, tag: str, title: str, at: datetime, open_rate: float = 0.5,
                      campaign_id: str | None = None) -> str:
        """Send a campaign to the subscribed contacts tagged `tag` on `list_id` at `at`; each
        opens it with probability `open_rate` (seeded by the campaign id). Returns its id."""
        with self._lock:  # type: ignore[attr-defined]
            self._cache.clear()  # type: ignore[attr-defined]
            campaign = campaign_id or f"{list_id[:4]}-{tag[:12]}-{at:%Y%m%d}"
            self._add_campaign(campaign, list_id, title, at)
            rng = random.Random(campaign)
            for h, member in sorted(self._members.get(list_id, {}).items()):
                if member["status"] != "subscribed" or not any(t["name"] == tag for t in member["tags"]):
                    continue
                activity = []
                if rng.random() < open_rate:
                    activity.append({"action": "open", "type": "", "timestamp": stamp(at + timedelta(minutes=rng.randrange(2, 600))),
                                     "url": "", "ip": "198.51.100.7"})
                self._sends[campaign][(list_id, h)] = {"email_address": member["email_address"], "status": "sent",
                                                       "activity": activity}
            return campaign

    def delete_campaign(self, campaign: str) -> None:
        """The campaign is deleted: its report URLs answer 404 from now on."""
        with self._lock:  # type: ignore[attr-defined]
            self._cache.clear()  # type: ignore[attr-defined]
            for table in (self._campaigns, self._sends, self._unsubscribes):
                table.pop(campaign, None)

    def control_send_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        at = datetime.fromisoformat(str(body.get("at") or AS_OF.isoformat()))
        campaign = self.send_campaign(str(body["list_id"]), str(body["tag"]), str(body.get("title") or body["tag"]), at,
                                      float(body.get("open_rate", 0.5)))
        return {"campaign_id": campaign, "recipients": len(self._sends[campaign])}

    def reports(self) -> list[dict[str, Any]]:
        """Every campaign report, as the API answers them (newest send first)."""
        with self._lock:  # type: ignore[attr-defined]
            return [self._report(c) for c in self._report_order()]

    def sent_to(self) -> list[dict[str, Any]]:
        """Every recipient of every campaign, as `sent-to` answers them."""
        with self._lock:  # type: ignore[attr-defined]
            return [self._recipient(c, key, send) for c in self._report_order() for key, send in self._sends[c].items()]

    def email_activity(self) -> list[dict[str, Any]]:
        """Every recipient's activity in every campaign, one row per action (as the connector
        flattens `email-activity`)."""
        with self._lock:  # type: ignore[attr-defined]
            return [{"campaign_id": c, "list_id": lid, "email_id": h, "email_address": send["email_address"], **event}
                    for c in self._report_order() for (lid, h), send in self._sends[c].items() for event in send["activity"]]

    def unsubscribes(self) -> list[dict[str, Any]]:
        """Every unsubscribe credited to a campaign."""
        with self._lock:  # type: ignore[attr-defined]
            return [{**u, "campaign_id": c} for c in self._report_order() for u in self._unsubscribes[c]]

    # ------------------------------------------------------------------ the API

    def _report_order(self) -> list[str]:
        return sorted(self._campaigns, key=lambda c: (self._campaigns[c]["send_time"], c), reverse=True)

    def _report(self, campaign: str) -> dict[str, Any]:
        info, sends = self._campaigns[campaign], self._sends[campaign].values()
        opens = [e for s in sends for e in s["activity"] if e["action"] == "open"]
        clicks = [e for s in sends for e in s["activity"] if e["action"] == "click"]
        hard = sum(1 for s in sends if s["status"] == "hard")
        soft = sum(1 for s in sends if s["status"] == "soft")
        delivered = max(1, len(sends) - hard - soft)
        openers = sum(1 for s in sends if any(e["action"] == "open" for e in s["activity"]))
        clickers = sum(1 for s in sends if any(e["action"] == "click" for e in s["activity"]))
        lst = self._lists.get(info["list_id"])  # type: ignore[attr-defined]
        return {
            "id": campaign, "campaign_title": info["title"], "type": info["type"], "list_id": info["list_id"],
            "list_is_active": lst is not None, "list_name": lst["name"] if lst else "", "subject_line": info["title"],
            "preview_text": "", "emails_sent": len(sends), "abuse_reports": 0,
            "unsubscribed": len(self._unsubscribes[campaign]), "send_time": stamp(info["send_time"]),
            "bounces": {"hard_bounces": hard, "soft_bounces": soft, "syntax_errors": 0},
            "forwards": {"forwards_count": 0, "forwards_opens": 0},
            "opens": {"opens_total": len(opens), "unique_opens": openers, "open_rate": round(openers / delivered, 4),
                      "last_open": max((e["timestamp"] for e in opens), default="")},
            "clicks": {"clicks_total": len(clicks), "unique_clicks": clickers, "unique_subscriber_clicks": clickers,
                       "click_rate": round(clickers / delivered, 4), "last_click": max((e["timestamp"] for e in clicks), default="")},
            "list_stats": {"sub_rate": 0, "unsub_rate": 0, "open_rate": 0, "click_rate": 0},
        }

    def _recipient(self, campaign: str, key: tuple[str, str], send: dict[str, Any]) -> dict[str, Any]:
        lid, h = key
        member = self._members.get(lid, {}).get(h)
        opens = [e["timestamp"] for e in send["activity"] if e["action"] == "open"]
        return {"email_id": h, "email_address": send["email_address"],
                "merge_fields": dict(member["merge_fields"]) if member else {}, "vip": bool(member and member["vip"]),
                "status": send["status"], "open_count": len(opens), "last_open": max(opens, default=""),
                "absplit_group": "", "gmt_offset": 0, "campaign_id": campaign, "list_id": lid,
                "list_is_active": lid in self._members}

    def _known(self, campaign: str) -> None:
        if campaign not in self._campaigns:
            raise SandboxError(404, "The requested resource could not be found.")

    def _get_reports(self, req: SandboxRequest) -> Reply:
        count, offset = self._window(req)  # type: ignore[attr-defined]
        since, before = req.param("since_send_time"), req.param("before_send_time")
        order = self._report_order()
        try:
            if since:
                order = [c for c in order if self._campaigns[c]["send_time"] > datetime.fromisoformat(since)]
            if before:
                order = [c for c in order if self._campaigns[c]["send_time"] < datetime.fromisoformat(before)]
        except ValueError:
            raise SandboxError(400, "since_send_time and before_send_time must be ISO 8601 times") from None
        rows = [self._report(c) for c in order[offset:offset + count]]
        return self.answer(req, {"reports": rows, "total_items": len(order)})  # type: ignore[attr-defined]

    def _get_report(self, req: SandboxRequest, campaign: str) -> Reply:
        self._known(campaign)
        return self.answer(req, self._report(campaign))  # type: ignore[attr-defined]

    def _get_sent_to(self, req: SandboxRequest, campaign: str) -> Reply:
        self._known(campaign)
        count, offset = self._window(req)  # type: ignore[attr-defined]
        sends = list(self._sends[campaign].items())
        rows = [self._recipient(campaign, key, send) for key, send in sends[offset:offset + count]]
        return self.answer(req, {"sent_to": rows, "campaign_id": campaign, "total_items": len(sends)})  # type: ignore[attr-defined]

    def _get_email_activity(self, req: SandboxRequest, campaign: str) -> Reply:
        self._known(campaign)
        count, offset = self._window(req)  # type: ignore[attr-defined]
        since = req.param("since")
        sends = list(self._sends[campaign].items())
        rows = []
        for (lid, h), send in sends[offset:offset + count]:
            events = [e for e in send["activity"] if not since or e["timestamp"] > since]
            rows.append({"campaign_id": campaign, "list_id": lid, "list_is_active": lid in self._members, "email_id": h,
                         "email_address": send["email_address"], "activity": events})
        return self.answer(req, {"emails": rows, "campaign_id": campaign, "total_items": len(sends)})  # type: ignore[attr-defined]

    def _get_unsubscribed(self, req: SandboxRequest, campaign: str) -> Reply:
        self._known(campaign)
        count, offset = self._window(req)  # type: ignore[attr-defined]
        unsubs = self._unsubscribes[campaign]
        rows = []
        for u in unsubs[offset:offset + count]:
            member = self._members.get(u["list_id"], {}).get(u["email_id"])
            rows.append({"email_id": u["email_id"], "email_address": u["email_address"],
                         "merge_fields": dict(member["merge_fields"]) if member else {},
                         "vip": bool(member and member["vip"]), "timestamp": u["timestamp"], "reason": u["reason"],
                         "campaign_id": campaign, "list_id": u["list_id"], "list_is_active": u["list_id"] in self._members})
        return self.answer(req, {"unsubscribes": rows, "campaign_id": campaign, "total_items": len(unsubs)})  # type: ignore[attr-defined]
