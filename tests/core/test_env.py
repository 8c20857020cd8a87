import ipaddress
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, env_networks, env_path, env_str


def test_unset_and_blank_values_fall_back_to_the_default():
    assert env_str("SITE_NAME", "Chat", environ={}) == "Chat"
    assert env_bool("DEBUG", False, environ={"DEBUG": "  "}) is False
    assert env_int("PORT", 8443, environ={"PORT": ""}) == 8443


@pytest.mark.parametrize("text", ["true", "TRUE", "yes", "on", "1"])
def test_booleans_accept_the_usual_spellings_of_true(text):
    assert env_bool("DEBUG", False, environ={"DEBUG": text}) is True


@pytest.mark.parametrize("text", ["false", "No", "off", "0"])
def test_booleans_accept_the_usual_spellings_of_false(text):
    assert env_bool("DEBUG", True, environ={"DEBUG": text}) is False


def test_a_boolean_that_is_neither_true_nor_false_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='ture' is not a boolean"):
        env_bool("DEBUG", False, environ={"DEBUG": "ture"})


def test_a_port_that_is_not_a_number_is_refused():
    with pytest.raises(ImproperlyConfigured, match=r"PORT='84a3' is not a whole number"):
        env_int("PORT", 8443, environ={"PORT": "84a3"})


def test_a_number_outside_its_bounds_is_refused():
    with pytest.raises(ImproperlyConfigured, match="above the maximum of 65535"):
        env_int("PORT", 8443, minimum=1, maximum=65535, environ={"PORT": "70000"})
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 1"):
        env_int("PORT", 8443, minimum=1, maximum=65535, environ={"PORT": "0"})


def test_lists_are_split_on_commas_and_trimmed():
    hosts = env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "chat.corp , 10.0.0.5"})

    assert hosts == ["chat.corp", "10.0.0.5"]


def test_a_list_with_an_empty_item_is_refused():
    with pytest.raises(ImproperlyConfigured, match="has an empty item"):
        env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "chat.corp,,other"})


def test_networks_are_parsed_in_cidr_form_for_both_families():
    networks = env_networks(
        "INTERNAL_NETWORKS", [], environ={"INTERNAL_NETWORKS": "10.20.0.0/16,fd00::/8,192.0.2.7"}
    )

    assert networks == [
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("192.0.2.7/32"),
    ]


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "intranet", "fd00::/129"])
def test_a_malformed_network_is_refused_with_an_example(text):
    with pytest.raises(ImproperlyConfigured, match=r"INTERNAL_NETWORKS contains .* CIDR form"):
        env_networks("INTERNAL_NETWORKS", [], environ={"INTERNAL_NETWORKS": text})


def test_relative_paths_are_taken_from_the_project_root():
    base = Path("/srv/chat")

    assert env_path("VAR_DIR", None, base=base, environ={"VAR_DIR": "state"}) == base / "state"
    assert env_path("VAR_DIR", None, base=base, environ={"VAR_DIR": "/var/lib/chat"}) == Path(
        "/var/lib/chat"
    )
