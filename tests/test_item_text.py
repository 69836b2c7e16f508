"""Issue 16 point 8: item text built from other columns is said to be built, and multi-genre
items keep every genre — through the real ingest of tiny MovieLens u.item and RecBole .item
files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.data.dataset import Dataset
from core.data.ingest.formats import ML_GENRES
from core.data.ingest.ingest import ingest
from core.data.text import text_source
from core.eval.interest import category_weights
from core.retrieval.embedding_map import item_facts
from dashboard import views_items as VI

BUILT = "No item descriptions in the file: the text is built from title + genres."


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(len(ML_GENRES)))


def test_u_item_genres_all_kept_and_the_text_said_to_be_built(tmp_path: Path, home):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t50\t5\t881250949\n2\t50\t4\t881250950\n2\t7\t3\t881250951\n")
    star_wars = [ML_GENRES.index(g) for g in ("Action", "Adventure", "Romance", "Sci-Fi", "War")]
    (folder / "u.item").write_bytes(
        (
            f"50|Star Wars (1977)|01-Jan-1977||http://x|{_flags(*star_wars)}\n"
            f"7|Twelve Monkeys (1995)|01-Jan-1995||http://y|{_flags(ML_GENRES.index('Drama'))}\n"
        ).encode("latin-1")
    )
    dataset, _ = ingest(folder / "u.data", home=home)
    loaded = Dataset.load(home, dataset.name)
    items = loaded.items.set_index("item_id")
    assert items.loc["50", "genres"] == "Action|Adventure|Romance|Sci-Fi|War"
    assert items.loc["50", "text"] == "Star Wars (1977). Action, Adventure, Romance, Sci-Fi, War"
    assert text_source(loaded) == BUILT
    facts = item_facts(loaded)
    code = int(loaded.item_codes(["50"])[0])
    assert facts.loc[code, "genres"] == "Action, Adventure, Romance, Sci-Fi, War"
    assert facts.loc[code, "category"] == "Action"  # the map colours by the first
    from dashboard.charts_items import embedding_map as draw

    legend = draw(facts.assign(x=0.0, y=0.0)).layout.legend.title.text
    assert legend == "First genre"
    assert VI.card_line(loaded, facts, code) == (
        "Item id 50 · genres: Action, Adventure, Romance, Sci\\-Fi, War"
    )
    assert [label for label, _, _ in VI.card_facts(facts, code)] == [
        "Interactions",
        "Popularity rank",
    ]
    # the interest profiles still split a multi-genre item evenly over its genres
    weights, names, _ = category_weights(loaded.items)
    row = weights.getrow(code).toarray().ravel()
    assert sorted(names[i] for i in row.nonzero()[0]) == sorted(
        ["Action", "Adventure", "Romance", "Sci-Fi", "War"]
    )
    assert row.max() == 0.2


def test_recbole_item_class_keeps_every_genre_in_the_text(tmp_path: Path, home):
    """RecBole's ml-100k.item has a space-separated class list: the text was 'title. first
    genre' ("Toy Story. Animation"); now every genre, and the pages say it is built."""
    inter = tmp_path / "toy.inter"
    inter.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t1\t5\t881250949\n2\t1\t4\t881250950\n2\t2\t3\t881250951\n"
    )
    (tmp_path / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction\n"
    )
    dataset, _ = ingest(inter, home=home)
    items = Dataset.load(home, dataset.name).items.set_index("item_id")
    assert items.loc["1", "text"] == "Toy Story. Animation, Children's, Comedy"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["1", "category"] == "Animation"
    assert text_source(dataset) == BUILT


def test_real_descriptions_are_not_called_built():
    inter = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"]})
    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "title": ["Yoga mat", "Skillet"],
            "text": ["A thick, non-slip mat.", "Cast iron."],
            "category": ["Sport", "Kitchen"],
        }
    )
    assert text_source(Dataset.from_frames("d", inter, items)) is None
    titles_only = Dataset.from_frames("t", inter, items.drop(columns=["text", "category"]))
    assert text_source(titles_only) == (
        "No item descriptions in the file: the text is the title alone."
    )
