"""Which experiment `report` and `by-value` read for a space, on a real SQLite MLflow store: the space's
own, its smoke-test one where asked for, and the smoke-test one where it holds the space's only searches
(the README's first search is a smoke test)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from ecgtune.cli import main
from ecgtune.spaces import load_space
from ecgtune.tuning.by_value import searched_space
from ecgtune.tuning.space_experiment import experiment_of
from ecgtune.tuning.tracking import SEARCH_TAG
from tests.reporting.conftest import report_store  # noqa: F401 (a fixture: a search of space "demo", smoke-test only)


def _client(tmp_path, *searched: str, empty: tuple[str, ...] = ()) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri, uri)
    for name in searched:
        client.create_run(client.create_experiment(name), tags={SEARCH_TAG: name})
    for name in empty:  # an experiment without a search (made by hand, or by a search refused early)
        client.create_experiment(name)
    return client


def test_the_space_experiment_is_preferred_and_the_smoke_one_read_where_it_is_the_only_one(tmp_path):
    client = _client(tmp_path, "quickstart", "quickstart-smoke", "pretrain_mitdb-smoke", empty=("pretrain_mitdb",))
    assert experiment_of(client, "quickstart", False) == ("quickstart", None)
    assert experiment_of(client, "quickstart", True) == ("quickstart-smoke", None)
    assert experiment_of(client, "pretrain_mitdb", False) == (
        "pretrain_mitdb-smoke",
        "note: 'pretrain_mitdb' has only smoke-test searches: reading experiment 'pretrain_mitdb-smoke' "
        "(as --smoke-test would)")


def test_by_value_reads_the_space_as_its_only_searches_ran(tmp_path):
    _client(tmp_path, "quickstart-smoke")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    space, note = searched_space(load_space("quickstart"), False, uri)
    assert space.smoke_test and space.experiment_name == "quickstart-smoke" and "only smoke-test searches" in note
    assert max(s.params["epochs"] for s in space.stages) == 1  # the smoke test's budget: its data too


def test_a_report_of_a_space_with_only_smoke_test_searches_reads_them_and_says_so(report_store, tmp_path, capsys):  # noqa: F811
    uri, ids = report_store
    out = tmp_path / "report"
    assert main(["report", "--space", "demo", "--mlflow-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: 'demo' has only smoke-test searches: reading experiment 'demo-smoke'" in printed
    assert f"({len(ids)} trial runs)" in printed and (out / "index.html").exists()
