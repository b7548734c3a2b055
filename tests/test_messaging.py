"""Messaging: templates checked and rendered as the screens format values,
the channels against real local servers (aiosmtpd for SMTP, an HTTP server
as SMS and WeCom gateway and as webhook receiver, checking the signature),
recipients, in-app notifications, the messages log and its API; on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass
from decimal import Decimal
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import MINI_FILES, is_error, make_config, token_for
from crmkit.jobs import PermanentFailure
from crmkit.loading import load_config
from crmkit.messaging import (
    DeliveryFailed,
    MessagingSettings,
    Messenger,
    NotifyAction,
    RefusedDelivery,
    SendAction,
    WebhookAction,
)
from crmkit.messaging.channels import Delivery, Outgoing
from crmkit.messaging.settings import SmtpSettings, from_environment, smtp_from_url
from crmkit.messaging.templates import Recipient
from crmkit.metadata.problems import ConfigError
from crmkit.permissions import SYSTEM, Actor

SECRET = "test-secret"

TEMPLATES_YAML = """
    templates:
      balance_email:
        channel: email
        entity: customer
        subject: {zh: "{{ name }} 的余额", en: "Balance of {{ name }}"}
        body:
          zh: "ZH_BODY"
          en: "EN_BODY"
      wake_up:
        channel: sms
        body: {zh: "{{ name }}，好久不见！", en: "{{ name }}, we miss you!"}
      wecom_note:
        channel: wechat
        body: "{{ name }}: {{ owner.display_name }}"
      contract_due:
        channel: in_app
        entity: contract
        subject: {zh: "合同 {{ number }}", en: "Contract {{ number }}"}
        body:
          zh: "客户 {{ customer.name }} 的合同金额 {{ amount }}"
          en: "{{ customer.name }}'s contract: {{ amount }}"
""".replace("ZH_BODY", "{{ recipient.name }}：客户 {{ name }}（{{ level }}）余额 {{ balance }}，"
            "生日 {{ birthday }}，推荐人 {{ referrer.name }}").replace(
    "EN_BODY", "{{ recipient.name }}: customer {{ name }} ({{ level }}) has {{ balance }}, born {{ birthday }}, "
    "referred by {{ referrer }}")

ROLES_YAML = """
    roles:
      sales_rep:
        label: {en: Sales rep, zh: 销售}
        entities:
          customer: {read: own, create: true, update: own}
          contract: {read: all}
        fields: {customer.balance: hidden}
      sales_manager:
        label: {en: Sales manager, zh: 销售经理}
        entities:
          customer: {read: all}
"""


@dataclass(frozen=True)
class Context:
    """What the automations engine hands an action (its ActionContext, structurally)."""

    runtime: Any
    automation: str
    entity: str | None
    record: Any
    actor: Actor
    key: str
    dry_run: bool = False
    depth: int = 0


# ---------------------------------------------------------------- local servers

class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    sink = SmtpSink()
    with socket.socket() as probe:  # a free port (aiosmtpd's ready check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


class Receiver:
    """A local HTTP server: records each request (path, headers, JSON body,
    whether the signature is right) and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                receiver.requests.append({
                    "method": self.command, "path": self.path, "body": json.loads(raw),
                    "signed": hmac.compare_digest(self.headers.get("X-Crmkit-Signature", ""), expected),
                    "delivery": self.headers.get("X-Crmkit-Delivery")})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


# ---------------------------------------------------------------- the app

@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "config", {**MINI_FILES, "templates.yaml": TEMPLATES_YAML,
                                             "roles.yaml": ROLES_YAML})


@pytest.fixture
def app(make_app, config):
    return make_app(config)


@pytest.fixture
def rt(app):
    return app.extensions["crmkit"]


def use(rt, settings: MessagingSettings) -> Messenger:
    """The runtime's messenger, with these settings (servers of the test)."""
    rt.messaging = Messenger(rt, settings)
    return rt.messaging


def user(rt, username: str, roles=("sales_rep",), **fields) -> int:
    row = rt.directory.create_user({"username": username, "roles": list(roles), **fields}, SYSTEM)
    return int(row["id"])


@pytest.fixture
def people(rt):
    boss = user(rt, "boss", ("sales_manager",), display_name="王经理", email="boss@example.com", mobile="13900000001")
    rep = user(rt, "rep", display_name="李销售", email="rep@example.com", mobile="13900000002", superior_id=boss)
    other = user(rt, "other", display_name="Other rep", email="other@example.com")
    return {"boss": boss, "rep": rep, "other": other}


@pytest.fixture
def customer(rt, people):
    referrer = rt.records.create("customer", {"name": "赵推荐", "owner_id": people["rep"]}, SYSTEM)
    return rt.records.create("customer", {
        "name": "张三", "mobile": "13800000000", "email": "zhang@example.com", "level": "gold",
        "balance": "1280.5", "birthday": "1990-03-08", "referrer": referrer["id"], "owner_id": people["rep"]}, SYSTEM)


def ctx(rt, record, key: str, entity: str = "customer") -> Context:
    return Context(rt, "test_automation", entity, record, SYSTEM, key)


# ---------------------------------------------------------------- checks

def test_unknown_variable_is_a_config_error_at_its_line(tmp_path):
    bad = TEMPLATES_YAML.replace("推荐人 {{ referrer.name }}", "推荐人 {{ referrer.nmae }}")
    bad = bad.replace("channel: wechat", "channel: wechatt")
    root = make_config(tmp_path / "bad", {**MINI_FILES, "templates.yaml": bad})
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    text = str(caught.value)
    assert "templates.yaml:7:12:" in text
    assert "unknown variable 'referrer.nmae': customer has no field 'nmae' (did you mean 'name'?)" in text
    assert "templates.yaml:13:14:" in text and "unknown channel 'wechatt' (did you mean 'wechat'?)" in text


def test_template_syntax_error_and_unknown_entity(tmp_path):
    bad = TEMPLATES_YAML.replace("{{ balance }}，", "{{ balance }，")
    root = make_config(tmp_path / "bad", {**MINI_FILES, "templates.yaml": bad})
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    assert "templates.yaml:7:12: template 'balance_email': template syntax error: unexpected '}'" in str(caught.value)
    bad = TEMPLATES_YAML.replace("entity: contract", "entity: contrakt")
    root = make_config(tmp_path / "bad2", {**MINI_FILES, "templates.yaml": bad})
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    assert "templates.yaml:17:13: unknown entity 'contrakt' (did you mean 'contract'?)" in str(caught.value)


def test_send_action_check(rt):
    spec = rt.spec
    customer, contract = spec.entities["customer"], spec.entities["contract"]
    send = SendAction()
    assert send.check({"template": "wake_up", "to": "record"}, customer, spec) == []
    assert send.check({"template": "wake_up", "to": ["owner", "superior", {"role": "sales_rep"}]}, customer, spec) \
        == []
    assert send.check({"template": "wake_up", "to": "customer"}, contract, spec) == [  # a contract has no name
        "template 'wake_up' body (zh): unknown variable 'name': contract has no field 'name' (did you mean 'number'?)",
        "template 'wake_up' body (en): unknown variable 'name': contract has no field 'name' (did you mean 'number'?)"]
    assert send.check({"template": "wakeup"}, customer, spec) == ["unknown template 'wakeup' (did you mean 'wake_up'?)"]
    assert send.check({"template": "wake_up", "channel": "email"}, customer, spec) == [
        "template 'wake_up' is written for sms, not email"]
    # A template without an entity is checked against the automation's entity.
    problems = send.check({"template": "wake_up", "to": "customer"}, spec.entities["order"], spec)
    assert problems == ["template 'wake_up' body (zh): unknown variable 'name': order has no field 'name'",
                        "template 'wake_up' body (en): unknown variable 'name': order has no field 'name'"]
    problems = send.check({"template": "balance_email", "to": "owner"}, contract, spec)
    assert problems[:2] == ["template 'balance_email' is written about customer records, not contract",
                            "to: owner: contract records have no owner (owned: false)"]
    assert send.check({"template": "wake_up", "to": {"role": "nobody"}}, customer, spec) == [
        "to: unknown role 'nobody'"]
    assert send.check({"template": "wake_up", "to": "referrer.referrer"}, customer, spec) == []
    assert send.check({"template": "wake_up", "to": "level"}, customer, spec) == [
        "to: 'level': customer has no ref field 'level'"]


def test_notify_and_webhook_checks(rt):
    spec = rt.spec
    customer = spec.entities["customer"]
    assert NotifyAction().check({"template": "wake_up"}, customer, spec) == [
        "template 'wake_up' is written for sms, not in_app"]
    assert NotifyAction().check({"body": {"zh": "{{ nam }}", "en": "{{ name }}"}, "to": "record"}, customer, spec) == [
        "template 'notify' body (zh): unknown variable 'nam': customer has no field 'nam' (did you mean 'name'?)",
        "to: record: in-app notifications go to users (owner, superior, {role}, {user})"]
    webhook = WebhookAction()
    assert webhook.check({"url": "https://example.com/hook"}, customer, spec) == []
    assert webhook.check({"url": "ftp://x", "method": "GET", "timeout": 0}, customer, spec) == [
        "webhook: url must be an http:// or https:// address", "webhook: method must be one of POST, PUT, PATCH, "
        "not 'GET'", "webhook: timeout must be seconds between 1 and 60"]


def test_settings_from_the_environment():
    settings = from_environment({"CRMKIT_SMTP_URL": "smtp+starttls://me%40x.com:p%2Fw@mail.example.com:587?from=crm@x.com",
                                 "CRMKIT_SMS_GATEWAY_URL": "http://sms.local/send", "CRMKIT_WEBHOOK_SECRET": "s"})
    assert settings.smtp == SmtpSettings("mail.example.com", 587, "me@x.com", "p/w", "crm@x.com", "starttls")
    assert settings.sms_gateway_url == "http://sms.local/send" and settings.wechat_gateway_url is None
    assert smtp_from_url("smtps://mail.example.com").port == 465
    assert from_environment({}).smtp is None


# ---------------------------------------------------------------- rendering

def test_values_are_formatted_as_the_screens_show_them_in_both_languages(rt, customer, people):
    messenger = use(rt, MessagingSettings())
    template = rt.spec.templates["balance_email"]
    someone = Recipient(name="李销售")
    subject, body = messenger.render(template, "customer", customer, "zh", someone)
    assert subject == "张三 的余额"
    assert body == "李销售：客户 张三（Gold）余额 ¥1,280.50，生日 1990年3月8日，推荐人 赵推荐"
    subject, body = messenger.render(template, "customer", customer, "en", someone)
    assert subject == "Balance of 张三"
    assert body == "李销售: customer 张三 (Gold) has ¥1,280.50, born Mar 8, 1990, referred by 赵推荐"


def test_moments_are_in_the_apps_timezone(rt, customer):
    messenger = use(rt, MessagingSettings())
    from crmkit.metadata.spec import TemplateSpec

    template = TemplateSpec("t", "sms", {"zh": "{{ created_at }}", "en": "{{ created_at }}"})
    record = dict(customer, created_at=dt.datetime(2026, 11, 30, 16, 20, tzinfo=dt.UTC))
    assert messenger.render(template, "customer", record, "zh")[1] == "2026年12月1日 00:20"
    assert messenger.render(template, "customer", record, "en")[1] == "Dec 1, 2026, 12:20\u202fAM"


def test_the_sandbox_refuses_private_attributes(rt, customer):
    messenger = use(rt, MessagingSettings())
    from jinja2.exceptions import SecurityError

    from crmkit.metadata.spec import TemplateSpec

    template = TemplateSpec("t", "sms", {"en": "{{ referrer.__class__.__mro__ }}"})
    with pytest.raises(SecurityError):
        messenger.render(template, "customer", customer, "en")


# ---------------------------------------------------------------- channels

def test_email_over_smtp_once_per_key(app, rt, customer, people, smtp_server):
    port, sink = smtp_server
    use(rt, MessagingSettings(smtp=SmtpSettings("127.0.0.1", port, sender="crm@example.com")))
    action = SendAction()
    args = {"template": "balance_email", "to": ["owner", "superior"], "language": "zh"}
    line = action.run(ctx(rt, customer, "run-1:0"), args)
    assert line.startswith("email 'balance_email': 2 sent (李销售, 王经理)")
    assert sorted(to for tos, _ in sink.messages for to in tos) == ["boss@example.com", "rep@example.com"]
    first = sink.messages[0][1]
    assert first["Subject"] == "张三 的余额" and first["From"] == "crm@example.com"
    assert "余额 ¥1,280.50" in first.get_content()
    # The job runs again (a retry, a crash after sending): nothing is sent twice.
    line = action.run(ctx(rt, customer, "run-1:0"), args)
    assert "0 sent" in line and "2 already sent by an earlier run" in line
    assert len(sink.messages) == 2
    client = app.test_client()
    messages = client.get(f"/api/v1/messages?entity=customer&record_id={customer['id']}").get_json()["data"]
    assert [(m["channel"], m["recipient"], m["status"]) for m in messages] == [
        ("email", "boss@example.com", "sent"), ("email", "rep@example.com", "sent")]
    assert messages[0]["automation"] == "test_automation" and messages[0]["template"] == "balance_email"
    assert messages[0]["subject"] == "张三 的余额" and "¥1,280.50" in messages[0]["body"]


def test_sms_and_wechat_post_signed_json_to_their_gateways(rt, customer, people, receiver):
    use(rt, MessagingSettings(sms_gateway_url=receiver.url + "/sms", wechat_gateway_url=receiver.url + "/wecom",
                              webhook_secret=SECRET))
    line = SendAction().run(ctx(rt, customer, "k1"), {"template": "wake_up", "to": "record"})
    assert line == "sms 'wake_up': 1 sent (张三)"
    SendAction().run(ctx(rt, customer, "k2"), {"template": "wecom_note", "to": "owner", "language": "en"})
    sms, wecom = receiver.requests
    assert sms["path"] == "/sms" and sms["signed"] and sms["delivery"] == "k1:sms:13800000000"
    assert sms["body"] | {"key": None} == {"channel": "sms", "to": "13800000000", "name": "张三", "username": None,
                                           "subject": "", "body": "张三，好久不见！", "language": "zh", "key": None}
    assert wecom["path"] == "/wecom" and wecom["signed"]
    assert wecom["body"]["to"] == "13900000002" and wecom["body"]["username"] == "rep"
    assert wecom["body"]["body"] == "张三: 李销售"


def test_a_channel_without_a_gateway_records_not_sent(rt, customer, people, caplog):
    messenger = use(rt, MessagingSettings())
    assert any("channel 'sms' has no gateway configured" in w for w in messenger.unconfigured())
    line = SendAction().run(ctx(rt, customer, "k"), {"template": "wake_up", "to": "record"})
    assert line == "sms 'wake_up': 0 sent, 1 not sent: no gateway"
    [row] = messenger.store.of_record("customer", customer["id"])
    assert (row["status"], row["error"], row["body"]) == ("not_sent", "no gateway", "张三，好久不见！")


def test_a_failed_delivery_raises_and_the_retry_sends_only_it(rt, customer, people, receiver):
    use(rt, MessagingSettings(sms_gateway_url=receiver.url, webhook_secret=SECRET))
    receiver.status = 503
    args = {"template": "wake_up", "to": ["record", "owner"]}
    with pytest.raises(DeliveryFailed, match="2 failed"):
        SendAction().run(ctx(rt, customer, "job-7"), args)
    receiver.status = 200
    line = SendAction().run(ctx(rt, customer, "job-7"), args)  # the job queue's retry
    assert line.startswith("sms 'wake_up': 2 sent")
    line = SendAction().run(ctx(rt, customer, "job-7"), args)
    assert "2 already sent" in line
    assert len(receiver.requests) == 4
    rows = rt.messaging.store.of_record("customer", customer["id"])
    assert sorted((r["status"], r["attempts"]) for r in rows) == [("sent", 2), ("sent", 2)]


def test_a_record_without_an_address_is_skipped_and_said_so(rt, people, receiver):
    use(rt, MessagingSettings(sms_gateway_url=receiver.url))
    record = rt.records.create("customer", {"name": "无号码", "owner_id": people["rep"]}, SYSTEM)
    line = SendAction().run(ctx(rt, record, "k"), {"template": "wake_up", "to": ["record", "referrer"]})
    assert line == "sms 'wake_up': 0 sent, 1 without an address (无号码)"
    assert receiver.requests == []


def test_a_plugin_channel_replaces_a_builtin_one(rt, customer, people):
    sent: list[Outgoing] = []

    class Carrier:
        name = "sms"

        def address(self, recipient: Recipient) -> str | None:
            return recipient.mobile

        def configured(self) -> bool:
            return True

        def deliver(self, message: Outgoing) -> Delivery:
            sent.append(message)
            return Delivery("sent")

    class Plugin:
        from crmkit.hookspecs import hookimpl

        @hookimpl
        def crmkit_channels(self, settings):
            return [Carrier()]

    rt.pm.register(Plugin(), name="carrier")
    try:
        messenger = use(rt, MessagingSettings())
        assert isinstance(messenger.channels["sms"], Carrier)
        SendAction().run(ctx(rt, customer, "k"), {"template": "wake_up", "to": "record"})
    finally:
        rt.pm.unregister(name="carrier")
    assert [(m.address, m.body) for m in sent] == [("13800000000", "张三，好久不见！")]


# ---------------------------------------------------------------- recipients

def test_recipients_by_role_user_field_and_ref_path(rt, customer, people, receiver):
    use(rt, MessagingSettings(sms_gateway_url=receiver.url))
    contract = rt.records.create("contract", {"customer": customer["id"], "amount": "99"}, SYSTEM)
    SendAction().run(ctx(rt, contract, "c", "contract"), {"template": "wake_up", "to": "customer"})
    SendAction().run(ctx(rt, customer, "r"), {"template": "wake_up", "to": {"role": "sales_manager"}})
    SendAction().run(ctx(rt, customer, "u"), {"template": "wake_up", "to": {"user": "owner_id"}})
    assert [r["body"]["to"] for r in receiver.requests] == ["13800000000", "13900000001", "13900000002"]
    rt.directory.update_user(people["boss"], {"active": False}, SYSTEM)
    line = SendAction().run(ctx(rt, customer, "r2"), {"template": "wake_up", "to": "superior"})
    assert line == "sms 'wake_up': 0 sent, nobody to send to"


# ---------------------------------------------------------------- in-app notifications

def test_notifications_reach_the_bell_the_api_and_are_read_once(app, rt, customer, people):
    use(rt, MessagingSettings())
    contract = rt.records.create("contract", {"customer": customer["id"], "amount": "5000"}, SYSTEM)
    action = NotifyAction()
    line = action.run(ctx(rt, contract, "n1", "contract"), {"template": "contract_due", "to": {"role": "sales_rep"}})
    assert line.startswith("in_app 'contract_due': 2 sent")
    assert "already sent" in action.run(ctx(rt, contract, "n1", "contract"),
                                        {"template": "contract_due", "to": {"role": "sales_rep"}})
    birthday = {"zh": "{{ name }} 生日", "en": "{{ name }}'s birthday"}
    NotifyAction().run(ctx(rt, customer, "n2"), {"to": "owner", "title": "Hi", "body": birthday})
    rep = app.test_client(user="rep")
    token_for(app, "rep")
    body = rep.get("/api/v1/notifications?lang=en").get_json()
    assert body["unread"] == 2
    assert [n["body"] for n in body["data"]] == ["张三's birthday", "张三's contract: ¥5,000.00"]
    zh = rep.get("/api/v1/notifications?lang=zh").get_json()["data"]
    assert zh[1]["title"] == f"合同 {contract['number']}" and zh[1]["body"] == "客户 张三 的合同金额 ¥5,000.00"
    page = rep.get("/app/notifications?lang=zh").get_data(as_text=True)
    assert "客户 张三 的合同金额 ¥5,000.00" in page and 'class="bell-count">2<' in page
    first = body["data"][0]["id"]
    # send with an in_app template is a notification too
    line = SendAction().run(ctx(rt, contract, "n3", "contract"),
                            {"template": "contract_due", "to": {"role": "sales_manager"}})
    assert line == "in_app 'contract_due': 1 sent (王经理)"
    other = app.test_client(user="other")
    is_error(other.post(f"/api/v1/notifications/{first}/read"), 404, "not_found")
    read = rep.post(f"/api/v1/notifications/{first}/read").get_json()["data"]
    assert read["read"] is True
    assert rep.get("/api/v1/notifications?unread=true").get_json()["unread"] == 1
    assert 'class="bell-count">1<' in rep.get("/app/").get_data(as_text=True)
    is_error(rep.get("/api/v1/notifications?unread=maybe"), 400, "invalid_parameter")


def test_the_notifications_page_marks_read_with_a_form(app, rt, customer, people):
    use(rt, MessagingSettings())
    record = rt.records.update("customer", customer["id"], {"name": "<b>张三</b>"}, SYSTEM)
    NotifyAction().run(ctx(rt, record, "n"), {"to": "owner", "body": "{{ name }}"})
    [item] = rt.messaging.store.notifications_of(people["rep"])
    rt.directory.update_user(people["rep"], {"password": "secret-password-1"}, SYSTEM)
    browser = app.test_client(user=None)
    login = browser.post("/login", data={"username": "rep", "password": "secret-password-1"})
    assert login.status_code == 303
    page = browser.get("/app/notifications").get_data(as_text=True)
    assert "&lt;b&gt;张三&lt;/b&gt;" in page and "<b>张三</b>" not in page  # a record's text is escaped
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    refused = browser.post(f"/app/notifications/{item['id']}/read", data={})
    assert refused.status_code in (400, 403)
    done = browser.post(f"/app/notifications/{item['id']}/read", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert rt.messaging.store.unread_count(people["rep"]) == 0


# ---------------------------------------------------------------- webhooks

def test_webhook_posts_the_record_signed_and_records_it(rt, customer, people, receiver):
    use(rt, MessagingSettings(webhook_secret=SECRET))
    line = WebhookAction().run(ctx(rt, customer, "w1"), {"url": receiver.url + "/hook?token=abc"})
    assert line == f"webhook POST {receiver.url}/hook: 1 sent ({receiver.url}/hook)"
    [request] = receiver.requests
    assert request["signed"] and request["delivery"] == "w1:webhook" and request["path"] == "/hook?token=abc"
    record = request["body"]["record"]
    assert request["body"]["automation"] == "test_automation" and request["body"]["entity"] == "customer"
    assert record["id"] == customer["id"] and record["balance"] == "1280.50" and record["mobile"] == "13800000000"
    assert Decimal(record["balance"]) == Decimal("1280.5")
    assert "already sent" in WebhookAction().run(ctx(rt, customer, "w1"), {"url": receiver.url + "/hook"})
    assert len(receiver.requests) == 1
    [row] = rt.messaging.store.of_record("customer", customer["id"])
    assert (row["channel"], row["status"]) == ("webhook", "sent") and "token" not in (row["subject"] or "")


def test_a_failing_webhook_raises_for_the_job_queue_to_retry(rt, customer, receiver):
    use(rt, MessagingSettings(webhook_secret=SECRET))
    receiver.status = 500
    with pytest.raises(DeliveryFailed, match="answered 500"):
        WebhookAction().run(ctx(rt, customer, "w2"), {"url": receiver.url, "method": "PUT"})
    receiver.status = 200
    assert "1 sent" in WebhookAction().run(ctx(rt, customer, "w2"), {"url": receiver.url, "method": "PUT"})
    assert [r["method"] for r in receiver.requests] == ["PUT", "PUT"]
    with pytest.raises(DeliveryFailed, match="URLError|ConnectionRefused") as caught:
        WebhookAction().run(ctx(rt, customer, "w3"), {"url": "http://127.0.0.1:9/closed", "timeout": 2})
    assert not isinstance(caught.value, PermanentFailure)  # retried with back-off by the job queue
    receiver.status = 410  # gone: the job goes to the dead-letter list at once
    with pytest.raises(RefusedDelivery, match="answered 410"):
        WebhookAction().run(ctx(rt, customer, "w4"), {"url": receiver.url})
    assert issubclass(RefusedDelivery, PermanentFailure)
    receiver.status = 429  # rate limited: retried
    with pytest.raises(DeliveryFailed) as caught:
        WebhookAction().run(ctx(rt, customer, "w5"), {"url": receiver.url})
    assert not isinstance(caught.value, PermanentFailure)


# ---------------------------------------------------------------- dry runs and the API

def test_describe_writes_nothing(rt, customer, people):
    messenger = use(rt, MessagingSettings())
    text = SendAction().describe(ctx(rt, customer, "d"), {"template": "wake_up", "to": "record"})
    assert text == "would send sms 'wake_up' to 张三 <13800000000> (not sent: no gateway): 张三，好久不见！"
    assert "would POST the customer record" in WebhookAction().describe(ctx(rt, customer, "d"),
                                                                         {"url": "https://x.example"})
    assert NotifyAction().describe(ctx(rt, customer, "d"), {"to": "owner", "title": "Hi", "body": "{{ name }}"}) == \
        "would notify 李销售 in the app: Hi: 张三"
    assert messenger.store.of_record(None, None) == []


def test_messages_api_is_for_readers_of_the_record(app, rt, customer, people, smtp_server):
    port, _sink = smtp_server
    use(rt, MessagingSettings(smtp=SmtpSettings("127.0.0.1", port)))
    SendAction().run(ctx(rt, customer, "k"), {"template": "wake_up", "to": "record"})
    SendAction().run(ctx(rt, customer, "k"), {"template": "balance_email", "to": "record"})
    path = f"/api/v1/messages?entity=customer&record_id={customer['id']}"
    email, sms = app.test_client(user="rep").get(path).get_json()["data"]  # the owner reads the customer
    assert (sms["recipient"], sms["body"], sms["status"]) == ("138****0000", "张三，好久不见！", "not_sent")
    # The email shows the balance, which the rep may not see: its text is not shown to them.
    assert (email["recipient"], email["subject"], email["body"], email["redacted"]) == (
        "z***@example.com", None, None, True)
    token_for(app, "other")
    is_error(app.test_client(user="other").get(path), 404, "not_found")  # not theirs
    is_error(app.test_client(user="rep").get("/api/v1/messages"), 400, "invalid_parameter")
    is_error(app.test_client(user=None).get(path), 401)
    admin = app.test_client()
    email, sms = admin.get("/api/v1/messages").get_json()["data"]
    assert sms["recipient"] == "13800000000" and "¥1,280.50" in email["body"] and "redacted" not in email
    is_error(admin.get("/api/v1/messages?entity=nothing&record_id=1"), 404)
    is_error(admin.get("/api/v1/messages?limit=0"), 400, "invalid_parameter")


def test_messages_api_pages(app, rt, customer, people):
    use(rt, MessagingSettings())
    for i in range(3):
        SendAction().run(ctx(rt, customer, f"k{i}"), {"template": "wake_up", "to": "record"})
    admin = app.test_client()
    first = admin.get("/api/v1/messages?limit=2").get_json()
    assert len(first["data"]) == 2 and first["next"]
    second = admin.get(first["next_url"]).get_json()
    assert len(second["data"]) == 1 and second["next"] is None


# ---------------------------------------------------------------- the sample config

def test_every_sample_template_renders_for_seeded_records_in_both_languages(make_runtime):
    from sqlalchemy import select

    from conftest import SAMPLE_CONFIG
    from crmkit.seed import seed

    rt = make_runtime(SAMPLE_CONFIG)
    rt.migrate()
    seed(rt, size=12, random_seed=3)
    messenger = Messenger(rt, MessagingSettings())
    assert len(rt.spec.templates) == 7
    for template in rt.spec.templates.values():
        assert template.entity is not None
        table = rt.tables.entities[template.entity]
        with rt.engine.connect() as conn:
            record = conn.execute(select(table).order_by(table.c.id).limit(1)).mappings().first()
        assert record is not None, template.entity
        for language in ("zh", "en"):
            subject, body = messenger.render(template, template.entity, record, language, Recipient("王经理"))
            assert body and "{{" not in body and "None" not in body, (template.name, language, body)
            if template.subject:
                assert subject, (template.name, language)


def test_check_and_start_up_warn_about_channels_without_a_gateway(make_app, config, caplog, monkeypatch):
    from click.testing import CliRunner

    from crmkit.cli import cli

    for name in ("CRMKIT_SMTP_URL", "CRMKIT_SMTP_HOST", "CRMKIT_SMS_GATEWAY_URL", "CRMKIT_WECHAT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRMKIT_SMS_GATEWAY_URL", "http://127.0.0.1:9/sms")
    result = CliRunner().invoke(cli, ["check", str(config)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "warning: channel 'email' has no gateway configured (CRMKIT_SMTP_URL (or CRMKIT_SMTP_HOST)): messages " \
           "of the templates balance_email will be recorded as 'not sent: no gateway'" in result.stderr
    assert "channel 'wechat'" in result.stderr and "channel 'sms'" not in result.stderr
    with caplog.at_level("WARNING", logger="crmkit.messaging"):
        app = make_app(config)
        app.extensions["crmkit"].messaging.warn_once()  # once: start-up said it already
    warned = [r.getMessage() for r in caplog.records if r.name == "crmkit.messaging"]
    assert warned == ["no gateway configured for email (CRMKIT_SMTP_URL (or CRMKIT_SMTP_HOST)), wechat "
                      "(CRMKIT_WECHAT_GATEWAY_URL): their messages are recorded as 'not sent: no gateway' "
                      "(crmkit check names the templates)"]  # one line, once


def test_approvers_and_requester_are_recipients_where_a_move_needs_approval(rt, customer):
    from crmkit.messaging.recipients import RecipientFinder, check_to

    entity = rt.spec.entities["customer"]
    assert check_to(rt.spec, entity, ["approvers", "requester"], "in_app") == [
        "to: approvers: no move of customer needs approval", "to: requester: no move of customer needs approval"]
    with rt.engine.connect() as conn:
        finder = RecipientFinder(rt, conn)
        assert finder.find("approvers", entity, {"id": customer["id"]}, "in_app") == []  # nothing pending
        told = RecipientFinder(rt, conn, {"approvers": [], "requested_by": None})
        assert told.find(["approvers", "requester"], entity, {"id": customer["id"]}, "in_app") == []


def test_each_user_gets_a_message_in_their_language_a_customer_in_the_apps(app, rt, customer, people, smtp_server):
    port, sink = smtp_server
    use(rt, MessagingSettings(smtp=SmtpSettings("127.0.0.1", port, sender="crm@example.com")))
    rt.directory.remember_language(rt.directory.actor(rt.directory.user("rep")), "en")
    SendAction().run(ctx(rt, customer, "lang-1"), {"template": "balance_email", "to": ["owner", "superior", "record"]})
    subjects = {tos[0]: message["Subject"] for tos, message in sink.messages}
    assert subjects == {"rep@example.com": "Balance of 张三", "boss@example.com": "张三 的余额",  # boss never chose
                        "zhang@example.com": "张三 的余额"}  # a customer: the app's default language
    SendAction().run(ctx(rt, customer, "lang-2"), {"template": "balance_email", "to": ["record", "superior"],
                                                   "language": "en"})
    assert {message["Subject"] for _, message in sink.messages[3:]} == {"Balance of 张三"}  # language: given
    NotifyAction().run(ctx(rt, customer, "lang-3"), {"to": "owner", "title": {"zh": "你好", "en": "Hello"},
                                                     "body": {"zh": "正文", "en": "Body"}})
    (logged,) = [m for m in rt.messaging.store.of_record("customer", customer["id"]) if m["channel"] == "in_app"]
    assert logged["subject"] == "Hello"  # the log line of the rep's notification: in their language
