"""Slack answers stay within Block Kit's limits however many models there are."""

import pytest

from bot.render.blocks import (
    MAX_BLOCKS,
    MAX_SECTION_CHARS,
    MAX_TABLE_ROWS,
    report_message,
)
from bot.render.tables import Column, Table
from bot.sources.records import SourceFailure


def table_of(rows: int) -> Table:
    return Table(
        title="Bedrock usage, last 48h",
        columns=[Column("model", "left"), Column("invocations")],
        rows=[
            [f"model-{i:04d}-with-a-rather-long-name", f"{i:,}"] for i in range(rows)
        ],
        total=["total", "0"],
    )


def test_a_small_table_is_a_table_block() -> None:
    _, blocks = report_message(table_of(3), [])

    (table,) = [b for b in blocks if b["type"] == "table"]
    assert len(table["rows"]) == 5  # header, three models, total
    assert table["column_settings"] == [{"align": "left"}, {"align": "right"}]


@pytest.mark.parametrize(
    "rows", [MAX_TABLE_ROWS, 400, 5_000], ids=["100", "400", "5000"]
)
def test_a_long_table_falls_back_to_monospace_within_limits(rows: int) -> None:
    _, blocks = report_message(table_of(rows), [SourceFailure("tinybird", "down")])

    assert len(blocks) <= MAX_BLOCKS
    assert not [b for b in blocks if b["type"] == "table"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= MAX_SECTION_CHARS for text in sections)
    assert sections[0].startswith("```model")
    joined = "".join(sections)
    assert "*tinybird*: down" in joined
    cut = [b for b in blocks if b["type"] == "context"]
    if rows == 5_000:
        assert cut[0]["elements"][0]["text"].startswith("Answer cut to fit Slack")
    else:
        assert not cut
        assert f"model-{rows - 1:04d}-with-a-rather-long-name" in joined


def test_long_notes_and_errors_are_cut_to_the_section_limit() -> None:
    """A note or a failure message never makes Slack refuse the whole answer."""
    table = table_of(3)
    table.notes = ["Not in the catalog: " + ", ".join(["vendor.model-v1:0"] * 400)]
    errors = [SourceFailure("cloudwatch", "x" * 4_000)]

    _, blocks = report_message(table, errors)

    (note,) = [
        e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]
    ]
    (error,) = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(note) == MAX_SECTION_CHARS and note.endswith("…")
    assert len(error) == MAX_SECTION_CHARS and error.startswith("Partial answer.")
