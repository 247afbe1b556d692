"""One rule for every name that becomes a path or an identifier (issue 13, items 13 and 15)."""

import pytest

from threadline.contracts import ConfigError
from threadline.engine import plan_job
from threadline.job import job_from_dict
from threadline.names import is_safe_name, safe_name


@pytest.mark.parametrize("name", ["crm", "crm__customers", "eu-west.2", "_x", "A1"])
def test_ordinary_names_are_safe(name):
    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["", "../x", "..", "a..b", ".hidden", "a/b", "a\\b", "x\n", "x\x00", "x y", "é", "a" * 129])
def test_names_that_climb_hide_or_break_lines_are_refused(name):
    assert not is_safe_name(name)
    with pytest.raises(ConfigError, match="cannot be used"):
        safe_name(name, "table")


def test_a_source_named_to_climb_out_of_the_job_folder_is_refused_when_the_job_loads(tmp_path):
    with pytest.raises(ConfigError) as caught:
        job_from_dict({"name": "j", "sources": {"../../x": {"connector": "files"}},
                       "destinations": {"d": {"connector": "duckdb", "config": {"path": "x.duckdb"}}}}, tmp_path)
    assert "'../../x' cannot be used as a name" in caught.value.render()


def test_a_table_override_that_climbs_out_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n")
    (tmp_path / "victim_dir").mkdir()
    job = job_from_dict({
        "name": "j",
        "sources": {"src": {"connector": "files", "config": {"streams": [{"name": "s", "path": "a.csv"}]},
                            "streams": {"s": {"write": "replace", "table": "../../victim_dir"}}}},
        "destinations": {"d": {"connector": "files", "config": {"path": "out"}}},
    }, tmp_path)
    with pytest.raises(ConfigError) as caught:
        plan_job(job)
    assert "table '../../victim_dir' cannot be used" in caught.value.render()
    assert "sources.src.streams.s.table" in caught.value.render()
    assert (tmp_path / "victim_dir").is_dir()


def test_a_stream_name_from_a_connector_that_climbs_out_is_refused(tmp_path, memory):
    from threadline.contracts import Catalog, Stream

    class Climbing(memory.source):
        def discover(self, config):
            return Catalog((Stream("../people", memory.schema, ("id",)),))

    memory.registry.sources["memory"] = Climbing
    with pytest.raises(ConfigError) as caught:
        plan_job(memory.job(), memory.registry)
    assert "stream name from connector 'memory' '../people' cannot be used" in caught.value.render()


def test_an_audience_name_ending_in_a_newline_is_refused():
    audience_config = pytest.importorskip("threadline_profiles.config.audiences",
                                          reason="threadline-profiles is not installed")
    audiences = {"vip\n": audience_config.AudienceConfig(where="orders_count > 1")}
    with pytest.raises(ValueError, match="audience name"):
        audience_config.check_references(audiences, {})
