"""Free-text scrubbing: each category found, replaced and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from deid.errors import ConfigError
from deid.scrub import PLACEHOLDERS, SCRUB_CATEGORIES, TextScrubber, load_name_list


@pytest.mark.parametrize(
    ("category", "text", "secret"),
    [
        pytest.param("email", "write to jane.doe+skin@example.co.uk please", "jane.doe", id="email"),
        pytest.param("url", "photos at https://imgur.com/a/XyZ12 too", "imgur", id="url-https"),
        pytest.param("url", "my blog www.janes-skin.net/posts", "janes-skin", id="url-www"),
        pytest.param("url", "see myclinic.org/rash for more", "myclinic", id="url-bare"),
        pytest.param("date", "started on 2024-03-12 after a hike", "2024-03-12", id="date-iso"),
        pytest.param("date", "started 12/03/2024", "12/03/2024", id="date-slash"),
        pytest.param("date", "born 3rd of June 1990", "June", id="date-words"),
        pytest.param("date", "since March 5, 2023", "March 5", id="date-month-first"),
        pytest.param("street_address", "I live at 221b Baker Street in London", "Baker", id="street"),
        pytest.param("street_address", "flat 4, 12 Elm Rd.", "Elm", id="street-abbrev"),
        pytest.param("street_address", "postcode SW1A 1AA", "SW1A", id="uk-postcode"),
        pytest.param("phone", "call +44 20 7946 0958 anytime", "7946", id="phone-intl"),
        pytest.param("phone", "or (555) 123-4567", "123-4567", id="phone-us"),
        pytest.param("id_number", "my MRN is AB1234567", "AB1234567", id="mrn"),
        pytest.param("id_number", "NHS no 943-476-5919x", "5919", id="nhs-like"),
    ],
)
def test_each_category_is_removed_and_counted(category: str, text: str, secret: str) -> None:
    result = TextScrubber().scrub(text)
    assert secret not in result.text
    assert PLACEHOLDERS[category] in result.text
    assert result.counts.get(category, 0) >= 1
    assert set(result.counts) <= set(SCRUB_CATEGORIES)


def test_names_from_the_list_whole_words_any_case() -> None:
    scrubber = TextScrubber(names=["Ann", "Mary Jane", " "])
    result = scrubber.scrub("ann and MARY JANE met Annabel")
    assert result.text == "[NAME] and [NAME] met Annabel"
    assert result.counts == {"name": 2}
    assert result.removed == 2


@pytest.mark.parametrize(
    "text",
    [
        "itchy red rash on my left arm for 2 weeks, about 10mm wide",
        "COVID-19 vaccine last year, fever 38.5C, since 2019",
        "worse after 3 days in the sun; e.g. at the beach",
    ],
)
def test_medical_text_is_left_alone(text: str) -> None:
    result = TextScrubber().scrub(text)
    assert result.text == text
    assert result.counts == {}


def test_control_characters_are_collapsed() -> None:
    assert TextScrubber().scrub("line one\n\tline two\r\n").text == "line one line two"


def test_load_name_list(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("# first names\nAlice\n\n  Bob  # a comment\n", encoding="utf-8")
    assert load_name_list(path) == ("Alice", "Bob")
    with pytest.raises(ConfigError, match="cannot read"):
        load_name_list(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("Jos\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_name_list(tmp_path / "latin1.txt")
