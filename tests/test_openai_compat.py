"""OpenAI-compatible client, chat model adapter and chat judge, all against the loopback fake server."""
from __future__ import annotations

import base64
import http.client
import io
import json
import math
import ssl
import time

import pytest
from PIL import Image

from harness.clients.messages import chat_messages, image_data_url, is_dated_snapshot, user_message
from harness.clients.openai_compat import OpenAICompatClient
from harness.errors import HarnessError, PartialBatchError
from harness.judges.base import ChatJudge, ChatPrompt
from harness.clients.messages import UndatedModelError
from harness.judges.chat import OpenAIChatJudge
from harness.models.base import InputImage, Request
from harness.models.openai_chat import OpenAIChatModel
from harness.hashing import hash_bytes, hash_value
from harness.judge_replies import reply_key
from harness.testing.fake_openai import Fault, FakeOpenAIServer

SECRET = "sk-test-7f3a9c1e5b"
ENV = "HARNESS_TEST_OPENAI_KEY"
DATED = "gpt-4o-2024-08-06"


def make_client(server: FakeOpenAIServer, sleeps: list[float] | None = None, **options) -> OpenAICompatClient:
    options.setdefault("timeout_s", 2.0)
    record = sleeps.append if sleeps is not None else (lambda seconds: None)
    return OpenAICompatClient(server.base_url, DATED, api_key_env=ENV, sleep=record, **options)


def png_pixel(data_url: str) -> tuple:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):]))).getpixel((0, 0))


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def test_round_trip_sends_images_before_text_and_the_key_only_in_the_header(monkeypatch):
    monkeypatch.setenv(ENV, SECRET)
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    with FakeOpenAIServer(api_key=SECRET) as server:
        client = make_client(server)
        result = client.chat([user_message("What colour is it?", [red, blue])], temperature=0.0, max_tokens=7)
    assert (result.text, result.error, result.attempts) == ("echo: What colour is it?", None, 1)
    assert result.model == DATED  # the fake echoes a dated name unchanged
    received = server.requests[0]
    assert received.path == "/v1/chat/completions" and received.has_authorization
    assert "Authorization" not in received.headers
    body = received.body
    assert (body["model"], body["temperature"], body["max_tokens"]) == (DATED, 0.0, 7)
    parts = body["messages"][0]["content"]
    assert [part["type"] for part in parts] == ["image_url", "image_url", "text"]
    assert png_pixel(parts[0]["image_url"]["url"]) == (255, 0, 0)
    assert png_pixel(parts[1]["image_url"]["url"]) == (0, 0, 255)
    assert parts[2]["text"] == "What colour is it?"
    for text in (repr(client), str(vars(client)), str(client.usage), str(result)):
        assert SECRET not in text


def test_wrong_key_fails_at_once_and_the_echoed_key_is_masked(monkeypatch):
    monkeypatch.setenv(ENV, SECRET)
    sleeps: list[float] = []
    with FakeOpenAIServer(api_key="sk-the-right-one") as server:
        result = make_client(server, sleeps).chat([user_message("hi")])
    assert result.text is None and result.attempts == 1 and sleeps == []
    assert "HTTP 401" in result.error and "Incorrect API key provided: ***" in result.error
    assert SECRET not in result.error and len(server.requests) == 1


def test_missing_key_is_an_error_for_remote_servers_only():
    with pytest.raises(HarnessError, match=ENV) as caught:
        OpenAICompatClient("https://api.example.com/v1", DATED, api_key_env=ENV).check_credentials()
    assert "api.example.com" in str(caught.value)
    with pytest.raises(HarnessError, match=ENV):
        OpenAIChatJudge("https://api.example.com/v1", DATED, api_key_env=ENV)
    with FakeOpenAIServer() as server:  # loopback: vLLM without --api-key
        assert make_client(server).chat([user_message("hi")]).text == "echo: hi"
    assert not server.requests[0].has_authorization


def test_429_honours_retry_after_beyond_backoff_max_up_to_its_own_cap():
    sleeps: list[float] = []
    faults = [Fault.rate_limited("2"), Fault.rate_limited("60"), Fault.rate_limited("500"),
              Fault.rate_limited_ms("1500")]
    with FakeOpenAIServer(faults=faults) as server:
        result = make_client(server, sleeps, backoff_max_s=5.0).chat([user_message("hi")])
    assert (result.text, result.attempts) == ("echo: hi", 5)
    assert sleeps == [2.0, 60.0, 120.0, 1.5]  # the default retry_after_max_s is 120, not backoff_max_s
    assert len(server.requests) == 5
    usage = make_usage_subset(result)
    assert usage == {"prompt_tokens": 1, "completion_tokens": 2}
    sleeps.clear()
    with FakeOpenAIServer(faults=[Fault.rate_limited("60")]) as server:
        make_client(server, sleeps, retry_after_max_s=10.0).chat([user_message("hi")])
    assert sleeps == [10.0]
    with pytest.raises(HarnessError, match="retry_after_max_s"):
        OpenAICompatClient("http://127.0.0.1:1/v1", DATED, retry_after_max_s=math.inf)


def test_non_finite_retry_after_falls_back_to_the_jittered_backoff():
    sleeps: list[float] = []
    faults = [Fault.rate_limited("nan"), Fault.rate_limited("inf"), Fault.rate_limited_ms("NaN")]
    with FakeOpenAIServer(faults=faults) as server:
        client = make_client(server, sleeps, backoff_s=1.0, backoff_max_s=8.0)
        result = client.chat([user_message("hi")])
    assert (result.text, result.attempts) == ("echo: hi", 4)
    # retry n waits uniform(0, min(8, 1 * 2**n)): bounds 1, 2, 4 (time.sleep(nan) would raise)
    assert len(sleeps) == 3 and all(math.isfinite(seconds) for seconds in sleeps)
    assert [0 <= seconds <= bound for seconds, bound in zip(sleeps, (1.0, 2.0, 4.0))] == [True] * 3


def make_usage_subset(result) -> dict:
    return {name: result.usage[name] for name in ("prompt_tokens", "completion_tokens")}


def test_500_beyond_max_retries_gives_an_error_result_with_reproducible_jittered_backoff():
    runs = []
    for _ in range(2):
        sleeps: list[float] = []
        with FakeOpenAIServer(faults=[Fault.server_error()] * 4) as server:
            client = make_client(server, sleeps, max_retries=2, backoff_s=1.0, backoff_max_s=1.5)
            result = client.chat([user_message("hi")])
        assert result.text is None and result.attempts == 3 and len(server.requests) == 3
        assert "HTTP 500" in result.error and "3 attempts" in result.error
        usage = client.usage
        assert (usage["requests"], usage["retries"], usage["failures"]) == (1, 2, 1)
        # full jitter: retry n waits uniform(0, min(max, base * 2**n)) -> bounds 1.0, then 1.5
        assert len(sleeps) == 2 and 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 1.5
        runs.append(sleeps)
    assert runs[0] == runs[1]  # jitter seeded by the call's content


def test_timeout_is_retried():
    with FakeOpenAIServer(faults=[Fault.slow(1.0)]) as server:
        start = time.monotonic()
        result = make_client(server, timeout_s=0.2).chat([user_message("hi")])
    assert (result.text, result.attempts) == ("echo: hi", 2)
    assert time.monotonic() - start < 1.0


def test_malformed_json_and_missing_choices_are_retried_then_reported():
    with FakeOpenAIServer(faults=[Fault.malformed_json(), Fault.missing_choices()]) as server:
        client = make_client(server, max_retries=1)
        failed = client.chat([user_message("hi")])
        recovered = client.chat([user_message("again")])  # the fault queue is empty now
    assert failed.text is None and failed.attempts == 2
    assert "malformed reply" in failed.error and "choices" in failed.error
    assert (recovered.text, recovered.attempts) == ("echo: again", 1)
    assert client.usage["failures"] == 1 and client.usage["retries"] == 1


def test_400_is_not_retried_and_carries_the_server_message():
    sleeps: list[float] = []
    with FakeOpenAIServer(faults=[Fault.client_error(400, "image too large")]) as server:
        result = make_client(server, sleeps).chat([user_message("hi")])
    assert result.attempts == 1 and sleeps == [] and len(server.requests) == 1
    assert result.error.startswith("HTTP 400: image too large")


def test_chat_many_bounds_concurrency_and_keeps_order():
    def slower_first(body) -> str:  # early requests finish last, so order must be restored
        text = body["messages"][0]["content"]
        time.sleep(0.01 * (12 - int(text[1:])))
        return text.upper()

    with FakeOpenAIServer(slower_first) as server:
        client = make_client(server, max_concurrency=3)
        results = client.chat_many([[user_message(f"q{i}")] for i in range(12)])
    assert [result.text for result in results] == [f"Q{i}" for i in range(12)]
    assert server.max_in_flight == 3


def test_usage_and_cost_accounting():
    prices = {"prompt_per_1k": 2.5, "completion_per_1k": 10.0}
    with FakeOpenAIServer(lambda body: "one two three") as server:
        client = make_client(server, prices=prices)
        client.chat(chat_messages("a b c d", system="sys prompt"))  # 6 prompt words, 3 reply words
        client.chat([user_message("e f")])  # 2 prompt words, 3 reply words
    usage = client.usage
    assert (usage["requests"], usage["retries"], usage["failures"]) == (2, 0, 0)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (8, 6)
    # 8 / 1000 * 2.5 + 6 / 1000 * 10 = 0.02 + 0.06
    assert usage["cost_usd"] == pytest.approx(0.08)
    assert usage["models"] == [DATED]
    for bad in ({"input": 1.0}, {"prompt_per_1k": "cheap", "completion_per_1k": 1.0}):
        with pytest.raises(HarnessError, match="prompt_per_1k"):
            OpenAICompatClient("http://127.0.0.1:1/v1", DATED, prices=bad)


def test_image_data_url_is_lossless_png():
    image = Image.new("RGB", (3, 2), (12, 34, 56))
    assert png_pixel(image_data_url(image)) == (12, 34, 56)
    assert png_pixel(image_data_url(Image.new("CMYK", (1, 1)))) == (255, 255, 255)  # converted to RGB


def test_model_adapter_answers_and_keeps_finished_answers_of_a_failed_batch():
    def responder(body):
        text = body["messages"][-1]["content"][-1]["text"]
        return Fault.server_error(503) if "fail" in text else f"answer to {text}"

    def request(index: int, prompt: str) -> Request:
        image = Image.new("RGB", (2, 2), (0, 255, 0))
        return Request(f"s{index}", prompt, seed=index, images=(InputImage(f"d{index}", lambda: image),))

    with FakeOpenAIServer(responder) as server:
        model = OpenAIChatModel(server.base_url, "qwen-vl", api_key_env=ENV, max_retries=0,
                                system_prompt="Be brief.", max_concurrency=2, max_tokens=16)
        assert model.batch_size == 2 and model.capabilities == {"answer"}
        assert model.answer([request(0, "q0"), request(1, "q1")]) == ["answer to q0", "answer to q1"]
        with pytest.raises(PartialBatchError) as caught:
            model.answer([request(0, "q0"), request(1, "fail me"), request(2, "q2")])
    assert caught.value.done == {0: "answer to q0", 2: "answer to q2"}
    assert "s1" in str(caught.value) and "HTTP 503" in str(caught.value)
    messages = server.requests[0].body["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert [part["type"] for part in messages[1]["content"]] == ["image_url", "text"]
    assert model.usage["failures"] == 1 and model.usage["requests"] == 5
    assert model.protocol["max_tokens"] == 16 and model.protocol["system_prompt_sha256"]
    other = OpenAIChatModel("http://localhost:9/v1", "qwen-vl", api_key_env=ENV, max_tokens=16,
                            system_prompt="Be brief.", max_concurrency=2)
    assert other.model_digest == model.model_digest  # the base URL is not part of the identity
    assert OpenAIChatModel.plugin_name == "openai-chat"


@pytest.mark.parametrize("name, dated", [
    ("gpt-4o", False), ("gpt-4o-mini", False), ("chatgpt-4o-latest", False), ("gpt-4.1", False),
    ("Qwen/Qwen2.5-VL-7B-Instruct", False), ("gpt-4o-2024-08-06", True), ("gpt-4o-mini-2024-07-18", True),
    ("gpt-3.5-turbo-0125", True), ("gpt-4-1106-preview", True), ("claude-3-5-sonnet-20241022", True)])
def test_dated_snapshot_names(name, dated):
    assert is_dated_snapshot(name) is dated


def test_judge_refuses_aliases_unless_allowed_and_records_the_served_snapshot():
    with FakeOpenAIServer() as server:
        with pytest.raises(UndatedModelError, match="allow_alias"):
            OpenAIChatJudge(server.base_url, "gpt-4o-mini", api_key_env=ENV)
        judge = OpenAIChatJudge(server.base_url, "gpt-4o-mini", api_key_env=ENV, allow_alias=True)
        replies = judge.ask([ChatPrompt("Which option?", (Image.new("RGB", (2, 2)),), system="Judge."),
                             ChatPrompt("second")])
    assert isinstance(judge, ChatJudge) and OpenAIChatJudge.plugin_name == "openai-compatible"
    assert [reply.text for reply in replies] == ["echo: Which option?", "echo: second"]
    assert {reply.model for reply in replies} == {"gpt-4o-mini-2024-01-01"}
    assert judge.usage["models"] == ["gpt-4o-mini-2024-01-01"]
    assert judge.judge_id == "openai-compatible:gpt-4o-mini(temperature=0.0,max_tokens=1024)"
    # the two prompts run concurrently, so find the first one by its system turn
    first, = [r.body for r in server.requests if r.body["messages"][0]["role"] == "system"]
    assert first["messages"][0]["content"] == "Judge."
    assert [part["type"] for part in first["messages"][1]["content"]] == ["image_url", "text"]


SCHEMA = {"type": "json_schema", "json_schema": {"schema": {
    "properties": {"score": {"enum": ["0", "1"], "title": "Score", "type": "string"}}, "required": ["score"],
    "title": "Verdict", "type": "object", "additionalProperties": False}, "name": "Verdict", "strict": True}}


def test_chat_many_sends_per_call_params_over_the_shared_ones():
    with FakeOpenAIServer() as server:
        client = make_client(server)
        results = client.chat_many([[user_message(f"q{i}")] for i in range(3)], temperature=0.5, max_tokens=9,
                                   per_call=[{"response_format": SCHEMA}, None, {"temperature": 1.0, "seed": None}])
        with pytest.raises(ValueError, match="2 entries for 3"):
            client.chat_many([[user_message("x")]] * 3, per_call=[None, None])
        with pytest.raises(ValueError, match="model or messages"):
            client.chat_many([[user_message("x")]], per_call=[{"model": "other"}])
    assert [r.text for r in results] == ["echo: q0", "echo: q1", "echo: q2"]
    bodies = {r.body["messages"][0]["content"]: r.body for r in server.requests}
    assert bodies["q0"]["response_format"] == SCHEMA and bodies["q0"]["temperature"] == 0.5
    assert {k: v for k, v in bodies["q1"].items() if k != "messages"} == {
        "model": DATED, "temperature": 0.5, "max_tokens": 9}  # as without per_call
    assert bodies["q2"]["temperature"] == 1.0 and "seed" not in bodies["q2"] and "response_format" not in bodies["q2"]


def test_judge_sends_each_prompts_response_format_as_given_and_no_empty_text_part():
    image = Image.new("RGB", (2, 2))
    reordered = {"json_schema": SCHEMA["json_schema"], "type": "json_schema"}
    with FakeOpenAIServer(lambda body: json.dumps({"score": "1"})) as server:
        judge = OpenAIChatJudge(server.base_url, DATED, api_key_env=ENV)
        replies = judge.ask([ChatPrompt("a", (image,), system="s1", response_format=SCHEMA),
                             ChatPrompt("", (image,), system="s2", response_format=reordered),
                             ChatPrompt("c", system="s3")])
        assert [reply.text for reply in replies] == ['{"score": "1"}'] * 3
        assert judge.judge_id == f"openai-compatible:{DATED}(temperature=0.0,max_tokens=1024)"  # not the judge's
    bodies = {r.body["messages"][0]["content"]: r.body for r in server.requests}
    assert json.dumps(bodies["s1"]["response_format"]) == json.dumps(SCHEMA)
    assert json.dumps(bodies["s2"]["response_format"]) == json.dumps(reordered)  # key order kept
    assert "response_format" not in bodies["s3"]
    assert [part["type"] for part in bodies["s2"]["messages"][1]["content"]] == ["image_url"]
    assert [part["type"] for part in bodies["s1"]["messages"][1]["content"]] == ["image_url", "text"]
    assert user_message("") == {"role": "user", "content": ""}  # without images: still a (empty) string


def test_the_fake_server_refuses_a_malformed_response_format_as_the_api_does():
    loose = json.loads(json.dumps(SCHEMA))
    del loose["json_schema"]["schema"]["additionalProperties"]
    with FakeOpenAIServer() as server:
        judge = OpenAIChatJudge(server.base_url, DATED, api_key_env=ENV, max_retries=3)
        reply, = judge.ask([ChatPrompt("hi", response_format=loose)])
    assert reply.text is None and "HTTP 400" in reply.error and "additionalProperties" in reply.error
    assert len(server.requests) == 1  # a 400 is not retried


def test_reply_log_key_is_unchanged_without_a_response_format():
    image = Image.new("RGB", (3, 2), (1, 2, 3))
    prompt = ChatPrompt("text", (image,), system="sys", images_after_text=True)
    before = hash_value({"judge": {"id": 1}, "text": "text", "system": "sys",  # the key before the field existed
                         "images": [hash_bytes(b"RGB(3, 2)" + image.tobytes())], "images_after_text": True},
                        length=32)
    assert reply_key({"id": 1}, prompt) == before
    keyed = reply_key({"id": 1}, ChatPrompt("text", (image,), system="sys", images_after_text=True,
                                            response_format=SCHEMA))
    reordered = {"json_schema": SCHEMA["json_schema"], "type": "json_schema"}
    assert len({before, keyed, reply_key({"id": 1}, ChatPrompt("text", (image,), system="sys",
                                                                images_after_text=True,
                                                                response_format=reordered))}) == 3


def test_judge_failure_comes_back_as_a_reply_with_error():
    with FakeOpenAIServer(faults=[Fault.client_error(404, "model not found")]) as server:
        judge = OpenAIChatJudge(server.base_url, DATED, api_key_env=ENV, temperature=None, max_tokens=None)
        reply, = judge.ask([ChatPrompt("hi")])
    assert reply.text is None and "model not found" in reply.error and reply.attempts == 1
    assert "temperature" not in server.requests[0].body and "max_tokens" not in server.requests[0].body
    assert judge.judge_id == f"openai-compatible:{DATED}()"


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAIServer() as server:
        base_url = server.base_url
    sleeps: list[float] = []  # the server is gone: nothing listens on its port any more
    client = OpenAICompatClient(base_url, DATED, api_key_env=ENV, max_retries=2, timeout_s=1.0,
                                sleep=sleeps.append)
    result = client.chat([user_message("hi")])
    assert result.text is None and result.attempts == 3 and len(sleeps) == 2
    assert "connection failed" in result.error


def test_key_with_surrounding_whitespace_is_stripped(monkeypatch):
    monkeypatch.setenv(ENV, f" {SECRET}\r\n")  # as an env file or a pasted key may leave it
    with FakeOpenAIServer(api_key=SECRET) as server:
        result = make_client(server).chat_many([[user_message("hi")]])[0]
    assert (result.text, result.error) == ("echo: hi", None)


@pytest.mark.parametrize("bad", ["\n", "\x01", "\x7f", " ", "\u00e9"])
def test_key_with_an_inner_control_character_is_refused_without_quoting_it(monkeypatch, bad):
    key = SECRET[:6] + bad + SECRET[6:]
    monkeypatch.setenv(ENV, key)
    with FakeOpenAIServer(api_key=SECRET) as server:
        client = make_client(server)
        for call in (client.check_credentials, lambda: client.chat_many([[user_message("hi")]])):
            with pytest.raises(HarnessError, match=f"{ENV}.*position 6") as caught:
                call()
            assert SECRET[:6] not in str(caught.value) and SECRET[6:] not in str(caught.value)
    assert server.requests == []


def test_an_unexpected_exception_fails_one_call_not_the_batch_and_the_key_is_masked(monkeypatch):
    monkeypatch.setenv(ENV, SECRET)
    with FakeOpenAIServer(api_key=SECRET) as server:
        client = make_client(server, max_concurrency=2)
        real_open = client._opener.open

        def open_or_fail(request, timeout):  # what http.client raises for a header it refuses
            if b"boom" in request.data:
                raise ValueError(f"Invalid header value b'Bearer {SECRET}\\n'")
            return real_open(request, timeout=timeout)

        monkeypatch.setattr(client._opener, "open", open_or_fail)
        results = client.chat_many([[user_message(text)] for text in ("a", "boom", "c")])
    assert [result.text for result in results] == ["echo: a", None, "echo: c"]
    failed = results[1]
    assert failed.attempts == 1 and failed.error.startswith("unexpected ValueError: Invalid header value")
    assert "***" in failed.error and SECRET not in failed.error
    assert client.usage["failures"] == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_so_the_key_never_reaches_another_host(monkeypatch, status):
    monkeypatch.setenv(ENV, SECRET)
    sleeps: list[float] = []
    with FakeOpenAIServer() as elsewhere:
        port = elsewhere.base_url.rsplit(":", 1)[1].split("/")[0]
        location = f"http://localhost:{port}/v1/chat/completions"  # another host name
        with FakeOpenAIServer(faults=[Fault.redirect(location, status)]) as server:
            result = make_client(server, sleeps).chat([user_message("hi")])
    assert elsewhere.requests == []
    assert result.text is None and result.attempts == 1 and sleeps == [] and len(server.requests) == 1
    assert result.error.startswith(f"HTTP {status}: the server redirects to localhost;")
    assert SECRET not in result.error


def test_a_tls_certificate_failure_is_not_retried(monkeypatch):
    monkeypatch.setenv(ENV, SECRET)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)

    def refuse_certificate(connection) -> None:  # what a self-signed or expired certificate raises
        error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        error.verify_message = "self-signed certificate"
        raise error

    monkeypatch.setattr(http.client.HTTPSConnection, "connect", refuse_certificate)
    sleeps: list[float] = []
    client = OpenAICompatClient("https://api.example.invalid/v1", DATED, api_key_env=ENV, timeout_s=1.0,
                                sleep=sleeps.append)
    result = client.chat([user_message("hi")])
    assert result.text is None and result.attempts == 1 and sleeps == []
    assert result.error.startswith("TLS certificate verification failed for api.example.invalid: "
                                   "self-signed certificate")


def test_plain_http_to_a_remote_host_is_refused_unless_allowed():
    for url in ("http://api.example.com/v1", "http://10.0.0.5:8000/v1"):
        with pytest.raises(HarnessError, match="allow_insecure_http") as caught:
            OpenAICompatClient(url, DATED, api_key_env=ENV)
        assert "unencrypted" in str(caught.value)
        assert OpenAICompatClient(url, DATED, api_key_env=ENV, allow_insecure_http=True).base_url == url
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1",
                "https://api.example.com/v1"):
        assert OpenAICompatClient(url, DATED, api_key_env=ENV).base_url == url


def test_connect_checks_the_key_at_once_unless_asked_to_wait(monkeypatch):
    from harness.clients.openai_compat import connect
    from harness.errors import InputError

    monkeypatch.delenv("HARNESS_TEST_NO_SUCH_KEY", raising=False)
    remote = dict(base_url="https://api.example.com/v1", model="m", api_key_env="HARNESS_TEST_NO_SUCH_KEY")
    with pytest.raises(HarnessError, match="HARNESS_TEST_NO_SUCH_KEY is not set"):
        connect(owner="judges.vqa", **remote)
    client = connect(owner="clients.llm", credentials_now=False, **remote)  # a cached recipe needs no key
    with pytest.raises(HarnessError, match="HARNESS_TEST_NO_SUCH_KEY is not set"):
        client.check_credentials()  # the first call that is not cached asks for it
    with pytest.raises(InputError, match=r"clients.llm: unknown parameter\(s\) timeout \(transport parameters"):
        connect(owner="clients.llm", credentials_now=False, timeout=5, **remote)
