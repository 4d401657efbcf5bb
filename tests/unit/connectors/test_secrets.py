import pytest

from connectors.secrets import SecretMissing, SecretStore, env_name


def test_files_first_then_environment(tmp_path):
    (tmp_path / "m1-hook").write_text("whsec_new\nwhsec_old\n")
    store = SecretStore(tmp_path, {env_name("m2.hook"): "from-env"})
    assert store.get("m1-hook").values == ("whsec_new", "whsec_old")
    assert store.get("m1-hook").current == "whsec_new"
    assert store.get("m2.hook").values == ("from-env",)
    assert env_name("m2.hook") == "CWN_SECRET_M2_HOOK"


def test_missing_secret_names_where_it_looked(tmp_path):
    with pytest.raises(SecretMissing, match="CWN_SECRET_NOPE"):
        SecretStore(tmp_path, {}).get("nope")


def test_values_never_show():
    secret = SecretStore(None, {"CWN_SECRET_K": "hunter2 hunter3"}).get("k")
    assert "hunter" not in repr(secret) and "hunter" not in str(secret) and "hunter" not in f"{secret}"
