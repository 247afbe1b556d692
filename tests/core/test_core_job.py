"""Job files: errors name the file, line and YAML path and say what was expected; secrets
come from the environment and never show up in messages."""

import textwrap

import pytest

from threadline.contracts import ConfigError
from threadline.engine import plan_job, run_job
from threadline.job import load_job
from threadline.secrets import redact

GOOD = """\
name: demo
sources:
  crm:
    connector: memory
    config: {page_size: 2}
destinations:
  dest:
    connector: memory
"""


def write(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_job_file_loads_with_its_defaults(tmp_path):
    job = load_job(write(tmp_path, GOOD))
    assert job.name == "demo" and job.max_rejected_share == 0.05 and job.concurrency == 2
    assert job.state_dir == tmp_path / ".threadline"


def test_env_references_are_substituted_and_registered_as_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", "tok-very-secret-123")
    job = load_job(write(tmp_path, GOOD.replace("{page_size: 2}", "{page_size: 2, token: '${CRM_TOKEN}'}")))
    assert job.sources["crm"].config["token"] == "tok-very-secret-123"
    assert redact("request failed with tok-very-secret-123") == "request failed with ***"


def test_env_references_may_have_a_default(tmp_path, monkeypatch):
    monkeypatch.delenv("PAGE", raising=False)
    job = load_job(write(tmp_path, GOOD.replace("{page_size: 2}", "{page_size: '${PAGE:-7}'}")))
    assert job.sources["crm"].config["page_size"] == "7"


def test_a_missing_env_variable_names_the_variable_the_yaml_path_and_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = write(tmp_path, GOOD.replace("{page_size: 2}", "{token: '${NOPE_TOKEN}'}"))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    text = exc.value.render()
    assert "environment variable NOPE_TOKEN is not set" in text
    assert f"{path}:5 at sources.crm.config.token" in text
    assert "export NOPE_TOKEN=" in text


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "name: demo\nsources:\n  crm:\n    connector: [memory\n")
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert "YAML syntax error" in exc.value.render()
    assert f"{path}:5" in exc.value.render() or f"{path}:4" in exc.value.render()


def test_an_unknown_field_names_its_path_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace("    connector: memory\n    config", "    conector: memory\n    config", 1))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    text = exc.value.render()
    assert f"{path}:4 at sources.crm.conector: unknown field 'conector'" in text
    assert "sources.crm.connector: required field is missing" in text


def test_a_wrong_type_says_what_was_expected(tmp_path):
    path = write(tmp_path, GOOD.replace("name: demo\n", "name: demo\nconcurrency: lots\n"))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert f"{path}:2 at concurrency: expected input should be a valid integer" in exc.value.render()


def test_a_connector_config_error_points_into_the_job_file(tmp_path, memory):
    path = write(tmp_path, GOOD.replace("{page_size: 2}", "{page_size: two}"))
    with pytest.raises(ConfigError) as exc:
        plan_job(load_job(path), memory.registry)
    assert f"{path}:5 at sources.crm.config.page_size: expected input should be a valid integer" in exc.value.render()


def test_an_unknown_connector_lists_the_installed_ones_and_how_to_install(tmp_path, memory):
    path = write(tmp_path, GOOD.replace("connector: memory\n    config", "connector: hubspott\n    config", 1))
    with pytest.raises(ConfigError) as exc:
        plan_job(load_job(path), memory.registry)
    text = exc.value.render()
    assert "no source connector named 'hubspott' is installed" in text
    assert "files" in text and "memory" in text  # the installed ones
    assert "threadline install" in text
    assert f"{path}:4 at sources.crm.connector" in text


def test_an_unknown_stream_lists_the_streams_the_source_offers(tmp_path, memory):
    path = write(tmp_path, GOOD.replace("{page_size: 2}", "{page_size: 2}\n    streams: {peeple: {}}"))
    with pytest.raises(ConfigError) as exc:
        plan_job(load_job(path), memory.registry)
    assert "has no stream 'peeple'" in exc.value.render() and "people" in exc.value.hint


def test_several_destinations_need_each_source_to_say_which(tmp_path):
    path = write(tmp_path, GOOD + "  other:\n    connector: memory\n")
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert "several destinations" in exc.value.render() and "destination: <one of dest, other>" in exc.value.hint


def test_a_secret_in_a_failing_stream_error_is_masked(tmp_path, monkeypatch, memory):
    monkeypatch.setenv("APP_KEY", "key-abcdef-987")
    load_job(write(tmp_path, GOOD.replace("name: demo", "name: demo  # ${APP_KEY}")
                   .replace("dest:\n    connector: memory", "dest:\n    connector: memory\n    config: {x: '${APP_KEY}'}")))

    class Leaky(memory.source):
        def read(self, config, request):
            raise RuntimeError("auth failed for key-abcdef-987")
            yield

    memory.registry.sources["memory"] = Leaky
    report = run_job(memory.job(), registry=memory.registry)
    assert "key-abcdef-987" not in report.error and "auth failed for ***" in report.error


def test_a_source_cannot_write_to_an_audience_destination(tmp_path, memory):
    pytest.importorskip("threadline_direct_mail", reason="threadline-direct-mail is not installed")
    from threadline_direct_mail import DirectMail

    memory.registry.destinations["direct_mail"] = DirectMail
    path = write(tmp_path, GOOD.replace("  dest:\n    connector: memory", "  dest:\n    connector: direct_mail"))
    with pytest.raises(ConfigError) as exc:
        plan_job(load_job(path), memory.registry)
    text = exc.value.render()
    assert "'direct_mail' is an audience destination: sources cannot write to it" in text
    assert "activations" in text and "at destinations.dest.connector" in text


# ---------------------------------------------------------------- bad job files (issue 13, item 16)


def write_bytes(tmp_path, data: bytes):
    path = tmp_path / "job.yaml"
    path.write_bytes(data)
    return path


def test_a_job_file_that_is_not_utf8_is_an_error_naming_the_line(tmp_path):
    path = write_bytes(tmp_path, GOOD.replace("demo", "démo").encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert f"{path}:1: the job file is not UTF-8 text" in exc.value.render() and "save it as UTF-8" in exc.value.hint


def test_a_utf16_job_file_is_an_error_saying_so(tmp_path):
    with pytest.raises(ConfigError, match="UTF-16"):
        load_job(write_bytes(tmp_path, GOOD.encode("utf-16")))


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"])
def test_nul_and_control_characters_are_an_error_naming_the_line(tmp_path, char):
    path = write_bytes(tmp_path, GOOD.replace("connector: memory\n    config", f"connector: mem{char}ory\n    config").encode())
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert f"{path}:4: the job file holds a control character" in exc.value.render()


@pytest.mark.parametrize("nesting", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000])
def test_deeply_nested_yaml_is_an_error_not_a_recursion_error(tmp_path, nesting):
    path = write(tmp_path, GOOD + f"extra: {nesting}\n")
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert "nests mappings and lists more than 64 deep" in exc.value.render() and f"{path}:" in exc.value.render()


def test_a_yaml_alias_bomb_is_refused_at_once_instead_of_hanging(tmp_path):
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(ConfigError, match="expands to more than 200,000 values through YAML aliases"):
        load_job(write(tmp_path, GOOD + "\n".join(levels) + "\n"))


# ---------------------------------------------------------------- silent typos and masking (rough edges)


@pytest.mark.parametrize("value, problem", [("${CRM_TOKEN", "has no closing `}`"),
                                            ("$CRM_TOKEN", "is not substituted: environment variables are written ${CRM_TOKEN}"),
                                            ("${1X}", "is not `${NAME}` or `${NAME:-default}`")])
def test_a_mistyped_env_reference_is_an_error_not_a_literal_value(tmp_path, value, problem):
    path = write(tmp_path, GOOD.replace("{page_size: 2}", f"{{token: '{value}'}}"))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert problem in exc.value.render() and "at sources.crm.config.token" in exc.value.render()


def test_a_double_dollar_is_a_literal_dollar(tmp_path):
    job = load_job(write(tmp_path, GOOD.replace("{page_size: 2}", "{price: '$$5 and $$HOME'}")))
    assert job.sources["crm"].config["price"] == "$5 and $HOME"


def test_a_required_field_left_empty_by_an_env_default_is_reported_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PATH", raising=False)
    from threadline.checks import check_job

    (tmp_path / "a.csv").write_text("id\n1\n")
    path = write(tmp_path, """\
        name: demo
        sources:
          crm:
            connector: files
            config: {streams: [{name: s, path: a.csv}]}
        destinations:
          db:
            connector: duckdb
            config:
              path: ${NOPE_PATH:-}
        """)
    (result,) = [r for r in check_job(path) if r.kind == "destination"]
    assert not result.ok
    assert "destinations.db.config.path: required field is missing ('${NOPE_PATH:-}' is empty: set the variable)" in result.message


def test_only_secret_fields_are_masked_so_a_url_from_the_environment_stays_readable(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:18999/crm-base")
    monkeypatch.setenv("CRM_PASSWORD_X", "pw-value-4711")
    load_job(write(tmp_path, GOOD.replace("{page_size: 2}",
                                          "{base_url: '${CRM_URL}', secret: '${CRM_PASSWORD_X}', api_key: literal-key-0815}")))
    assert redact("check base_url http://127.0.0.1:18999/crm-base") == "check base_url http://127.0.0.1:18999/crm-base"
    assert redact("pw-value-4711 literal-key-0815") == "*** ***"


def test_the_password_of_a_url_from_the_environment_is_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_URL", "postgres://app:hunter2-pw@db.example:5432/crm")
    load_job(write(tmp_path, GOOD.replace("{page_size: 2}", "{dsn_url: '${DB_URL}'}")))
    assert redact("cannot reach postgres://app:hunter2-pw@db.example:5432/crm") == "cannot reach postgres://app:***@db.example:5432/crm"


def test_state_commands_load_a_job_without_its_secrets_set(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    job = load_job(write(tmp_path, GOOD.replace("{page_size: 2}", "{token: '${NOPE_TOKEN}'}")), require_env=False)
    assert job.name == "demo"


def test_an_impossible_date_in_a_job_file_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, GOOD.replace("{page_size: 2}", "{page_size: 2, since: 2020-13-45}"))
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert f"{path}:5" in exc.value.render() and "'2020-13-45' looks like a date but is not one" in exc.value.render()
