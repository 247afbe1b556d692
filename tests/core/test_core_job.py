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
