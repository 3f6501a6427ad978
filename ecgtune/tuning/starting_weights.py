"""The weights fine-tuning starts from, when this search does not train them: registered champions,
refused where they could have trained on this search's test examples (the leak policy:
`ecgtune.data.splits.leak_free`), written where every trial reads them."""

from __future__ import annotations

from ecgtune.data.splits import leak_free
from ecgtune.errors import EcgtuneError
from ecgtune.spaces import SearchSpace
from ecgtune.tuning import promotion
from ecgtune.tuning.finalize import model_version_uri, weights_location
from ecgtune.tuning.plan import Source, Unit, external_sources
from ecgtune.tuning.prepared import PreparedData
from ecgtune.tuning.state import SearchState


def external_champion(mlf, space: SearchSpace, source: Source, data_key: str):
    """The registered champion of ``source`` (``models:/<source>@champion``) that a fine-tuning unit of
    ``space`` may start from; refused where it is missing, or where it could have trained on this search's
    test examples.

    A champion trained on this same dataset but with other preprocessing or another split is refused,
    because a patient's test examples could have been among its training examples. A champion of another
    dataset (MIT-BIH beats for the PTB-XL MI task) shares no patient with this one and is taken as it is.
    """
    champion = promotion.current_champion(mlf, source.name)
    if champion is None:
        t = space.transfer
        raise EcgtuneError(
            f"{space.path}: fine-tuning starts from the champion of {source.name!r}, which the MLflow registry "
            f"({mlf.tracking_uri}) does not hold; run the search that trains it first"
            + (f" (task {t.task} on {t.dataset}, split {t.split}, stage {t.stage}"
               f"{', --smoke-test' if space.smoke_test else ''})" if t else " (this space's pretrain stage)")
        )
    source_key = champion.tags.get("data_key")
    if not leak_free(source.dataset, source.split, source_key, space.dataset, space.split, data_key):
        raise EcgtuneError(
            f"the champion of {source.name!r} (version {champion.version}) was pre-trained on other data or another "
            f"split (data_key {source_key!r}, this search {data_key!r}); fine-tuning it could "
            "leak test windows. Pre-train with the same dataset, preprocessing and split first."
        )
    return champion


def pretrained_start(mlf, space: SearchSpace, source: Source, data_key: str) -> dict:
    """The weights (and the spec of their model) a fine-tuning unit starts from when this search does not
    train them itself: ``models:/<source>@champion``, checked by `external_champion`."""
    champion = external_champion(mlf, space, source, data_key)
    state = promotion.champion_checkpoint(mlf, champion)
    return {"model_state": state["model_state"], "model_spec": state["model_spec"],
            "version": model_version_uri(source.name, str(champion.version))}


def check_schedule_sources(plan: list[Unit], data: dict[str, PreparedData]) -> None:
    """The same rule for fine-tuning that starts from units of this very search."""
    trained_by = {u.registered_name: u for u in plan}
    for unit in plan:
        for s in unit.sources:
            if s.name not in trained_by:
                continue
            source = trained_by[s.name].space
            if not leak_free(source.dataset, source.split, data[source.experiment_name].key,
                             unit.space.dataset, unit.space.split, data[unit.space.experiment_name].key):
                raise EcgtuneError(
                    f"{unit.space.path}: fine-tuning starts from {s.name!r}, which {source.name} trains on "
                    f"{source.dataset} under split {source.split} with another preparation; it could have trained on "
                    f"this search's test examples. Use the same preprocessing and split, or a split by record (folds)."
                )

def check_external_sources(mlf, plan: list[Unit], data: dict[str, PreparedData]) -> None:
    """Refuse, before Ray starts and before any run is opened, a search whose fine-tuning starts from
    champions that are missing or could leak its test examples."""
    for unit, source in external_sources(plan).values():
        external_champion(mlf, unit.space, source, data[unit.space.experiment_name].key)

def provide_external_weights(mlf, plan: list[Unit], data: dict[str, PreparedData], state: SearchState) -> None:
    """Write the champions this search starts from (but does not train) where its trials read them."""
    from ecgtune.training.checkpoint import write_weights

    for name, (unit, source) in external_sources(plan).items():
        if name in state.weights:
            continue  # --resume: written by the interrupted run
        location = weights_location(state.storage_path, name)
        start = pretrained_start(mlf, unit.space, source, data[unit.space.experiment_name].key)
        write_weights(location, start["model_state"], start["model_spec"])
        state.weights[name] = location
        state.versions[name] = start["version"]
    state.save()
