"""Plugins are found through entry points; conflicts and broken plugins are reported by name."""

import logging
import sys
import textwrap

import pytest

from threadline.plugins import PluginConflictError, PluginLoadError, load_registry


def make_distribution(root, dist, module, body, version="1.2.3"):
    """A real installed distribution on disk: a module and a dist-info with entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[threadline]\n{module} = {module}\n")


SOURCE_PLUGIN = """
from threadline import hookimpl
from threadline_files.source import FilesSource

class {cls}(FilesSource):
    name = "{name}"

@hookimpl
def register_sources(register):
    register({cls})
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("tlplug_")]:
        del sys.modules[name]


def test_installed_plugins_are_listed_with_distribution_version_and_what_they_register():
    registry = load_registry()
    by_name = {p.name: p for p in registry.plugins}
    assert by_name["files"].distribution == "threadline-files"
    assert by_name["files"].sources == ["files"]
    assert by_name["duckdb"].destinations == ["duckdb"]
    assert by_name["files"].version


def test_a_plugin_found_through_its_entry_point_registers_its_source(site):
    make_distribution(site, "threadline-acme", "tlplug_acme", SOURCE_PLUGIN.format(cls="Acme", name="acme"))
    registry = load_registry()
    assert "acme" in registry.sources
    info = next(p for p in registry.plugins if p.name == "tlplug_acme")
    assert (info.distribution, info.version, info.sources) == ("threadline-acme", "1.2.3", ["acme"])


def test_two_plugins_registering_one_name_is_an_error_naming_both_distributions(site):
    make_distribution(site, "threadline-acme", "tlplug_acme", SOURCE_PLUGIN.format(cls="A", name="crm"))
    make_distribution(site, "threadline-other", "tlplug_other", SOURCE_PLUGIN.format(cls="B", name="crm"), "0.9")
    with pytest.raises(PluginConflictError) as exc:
        load_registry()
    assert "threadline-acme 1.2.3" in str(exc.value) and "threadline-other 0.9" in str(exc.value)


def test_a_plugin_that_fails_to_import_is_named_in_a_warning_and_the_rest_still_work(site, caplog):
    make_distribution(site, "threadline-broken", "tlplug_broken", "import not_a_module_anywhere\n")
    with caplog.at_level(logging.WARNING, logger="threadline.plugins"):
        registry = load_registry()
    assert "files" in registry.sources  # the others keep working
    warning = next(r.getMessage() for r in caplog.records if "tlplug_broken" in r.getMessage())
    assert "threadline-broken" in warning and "ModuleNotFoundError" in warning
    assert next(p for p in registry.plugins if p.name == "tlplug_broken").error


LAZY_PLUGIN = """
from threadline import hookimpl

@hookimpl
def register_sources(register):
    register("{name}", "{path}")

@hookimpl
def register_sandboxes(register):
    register("{name}", "tlplug_lazy_sandbox:Sandbox")
"""

LAZY_SOURCE = """
from threadline_files.source import FilesSource

class Lazy(FilesSource):
    name = "lazy"
"""


def test_a_name_registered_by_import_path_is_imported_only_when_it_is_looked_up(site):
    (site / "tlplug_lazy_source.py").write_text(LAZY_SOURCE)
    (site / "tlplug_lazy_sandbox.py").write_text("class Sandbox:\n    pass\n")
    make_distribution(site, "threadline-lazy", "tlplug_lazy", LAZY_PLUGIN.format(name="lazy", path="tlplug_lazy_source:Lazy"))
    registry = load_registry()
    assert "lazy" in registry.sources and "lazy" in registry.sandboxes
    assert "tlplug_lazy_source" not in sys.modules and "tlplug_lazy_sandbox" not in sys.modules
    assert registry.source("lazy").name == "lazy"
    assert "tlplug_lazy_source" in sys.modules and "tlplug_lazy_sandbox" not in sys.modules
    assert registry.sandboxes["lazy"].__name__ == "Sandbox"  # served: now it is imported


def test_an_import_path_that_fails_names_the_plugin_and_the_path_when_used(site):
    make_distribution(site, "threadline-lazy", "tlplug_lazy", LAZY_PLUGIN.format(name="lazy", path="tlplug_gone:Lazy"))
    registry = load_registry()  # registering is fine: nothing is imported yet
    with pytest.raises(PluginLoadError) as exc:
        registry.source("lazy")
    message = str(exc.value)
    assert "threadline-lazy 1.2.3" in message and "tlplug_gone:Lazy" in message and "ModuleNotFoundError" in message


def test_an_import_path_whose_class_has_another_name_is_an_error_naming_both(site):
    (site / "tlplug_lazy_source.py").write_text(LAZY_SOURCE)
    make_distribution(site, "threadline-lazy", "tlplug_lazy", LAZY_PLUGIN.format(name="other", path="tlplug_lazy_source:Lazy"))
    with pytest.raises(PluginLoadError, match="registered the source 'other'.*named 'lazy'"):
        load_registry().source("other")


AUDIENCE_PLUGIN = """
from threadline import hookimpl

@hookimpl
def register_audience_destinations(register):
    register("{name}", "{module}:{cls}")

@hookimpl
def register_destinations(register):
    register("{name}_table", "threadline_duckdb.destination:DuckDBDestination")
"""


def test_an_audience_destination_registers_through_its_own_hook_and_is_known_without_importing_it(site):
    make_distribution(site, "threadline-adco", "tlplug_adco",
                      AUDIENCE_PLUGIN.format(name="adco", module="tlplug_adco_impl", cls="AdCo"))
    registry = load_registry()
    assert registry.is_audience_destination("adco") and "adco" in registry.destinations
    assert "tlplug_adco_impl" not in sys.modules  # said without importing it
    assert not registry.is_audience_destination("duckdb")


def test_asking_for_an_audience_destination_by_a_record_destinations_name_says_which_it_is():
    from threadline.contracts import ConfigError

    registry = load_registry()
    with pytest.raises(ConfigError, match="'duckdb' is a record destination, not an audience destination") as caught:
        registry.audience_destination("duckdb")
    assert "meta_audiences" in caught.value.hint  # the installed audience destinations are listed
    with pytest.raises(ConfigError, match="'nope' is not installed"):
        registry.audience_destination("nope")
    assert registry.audience_destination("meta_audiences").name == "meta_audiences"


def test_a_class_registered_as_an_audience_destination_that_is_not_one_is_a_plugin_error(site):
    (site / "tlplug_fake_impl.py").write_text(
        "from threadline_duckdb.destination import DuckDBDestination\n\n"
        "class NotAudiences(DuckDBDestination):\n    name = 'notaud'\n")
    make_distribution(site, "threadline-fake", "tlplug_fake", AUDIENCE_PLUGIN.format(
        name="notaud", module="tlplug_fake_impl", cls="NotAudiences"))
    registry = load_registry()
    with pytest.raises(PluginLoadError, match="registered as an audience destination, but .* is not an AudienceDestination"):
        registry.audience_destination("notaud")
