"""Stage 2, map: a mapping that names a missing column is an error at check, not mid-run."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError
from threadline.contracts import ConfigError, Stream, StreamTarget, WriteDisposition
from threadline_profiles import ProfilesConfig, ProfilesDestination

SCHEMA = pa.schema([("id", pa.int64()), ("email", pa.string()), ("mobile", pa.string()), ("dob", pa.string())])


def target(source: str = "crm", stream: str = "contacts") -> StreamTarget:
    return StreamTarget(source, Stream(stream, SCHEMA, primary_key=("id",)), WriteDisposition.UPSERT, f"{source}__{stream}", "r1")


def config(mapping: dict, tmp_path) -> ProfilesConfig:
    return ProfilesConfig.model_validate({"path": str(tmp_path / "p.duckdb"), "mappings": {"crm.contacts": mapping}})


def test_a_mapping_to_a_missing_column_fails_check_naming_the_path_and_the_column(tmp_path):
    cfg = config({"identifiers": {"email": "email", "phone_number": "phone"}}, tmp_path)
    with pytest.raises(ConfigError) as err:
        ProfilesDestination().check_targets(cfg, [target()])
    assert err.value.field == "mappings.crm.contacts.identifiers.phone_number"
    assert "'phone_number'" in str(err.value)
    assert "id, email, mobile, dob" in str(err.value)


def test_a_missing_trait_column_is_named_by_its_trait_path(tmp_path):
    cfg = config({"traits": {"birth_date": "birthday"}}, tmp_path)
    with pytest.raises(ConfigError) as err:
        ProfilesDestination().check_targets(cfg, [target()])
    assert err.value.field == "mappings.crm.contacts.traits.birth_date"


def test_a_missing_address_part_fails_check(tmp_path):
    cfg = config({"address": {"postal_code": "zip"}}, tmp_path)
    with pytest.raises(ConfigError, match="'zip'"):
        ProfilesDestination().check_targets(cfg, [target()])


def test_a_valid_mapping_passes_check(tmp_path):
    cfg = config({"identifiers": {"email": "email", "mobile": "phone", "id": "customer_id:crm"},
                  "traits": {"birth_date": "dob"}, "cleaning": {"date_formats": {"dob": "%m/%d/%Y"}}}, tmp_path)
    ProfilesDestination().check_targets(cfg, [target()])


def test_opening_a_stream_with_a_bad_mapping_fails_before_anything_lands(tmp_path):
    cfg = config({"identifiers": {"nope": "email"}}, tmp_path)
    with pytest.raises(ConfigError):
        ProfilesDestination().open_stream(cfg, target())


def test_an_unknown_identifier_type_is_a_config_error():
    with pytest.raises(ValidationError, match="unknown identifier type 'fax'"):
        ProfilesConfig.model_validate({"mappings": {"crm.contacts": {"identifiers": {"f": "fax"}}}})


@pytest.mark.parametrize("formats", ["%Y", ["%Y-%m", "%m/%Y"]])
def test_a_birth_date_read_without_a_day_is_refused_pointing_to_birth_year(formats):
    # "1974" read as %Y would land as 1974-01-01 and differ from the person's real birth date elsewhere
    with pytest.raises(ValidationError, match=r"traits.birth_date: column 'born' .* hold no day .* map the column as `birth_year`"):
        ProfilesConfig.model_validate({"mappings": {"loyalty.members": {
            "traits": {"birth_date": "born"}, "cleaning": {"date_formats": {"born": formats}}}}})


def test_a_birth_date_with_a_day_in_one_of_its_formats_is_accepted():
    ProfilesConfig.model_validate({"mappings": {"loyalty.members": {
        "traits": {"birth_date": "born"}, "cleaning": {"date_formats": {"born": ["%Y", "%d.%m.%Y"]}}}}})


def test_a_rule_cannot_combine_an_identifier_with_traits():
    with pytest.raises(ValidationError, match="can only be matched on its own"):
        ProfilesConfig.model_validate({"resolution": {"rules": [{"name": "x", "match": ["email", "first_name"]}]}})
