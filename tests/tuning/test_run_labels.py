import json

import numpy as np
from ray import tune

from ecgtune.tuning.run_labels import dataset_inputs, searched_paths, split_profile, trial_run_name


def test_searched_paths_are_the_domains_and_grids_only():
    space = {"train": {"lr": tune.loguniform(1e-4, 1e-1), "batch_size": tune.grid_search([16, 32]), "epochs": 10,
                       "weighted_sampling": tune.choice([True, False])},
             "model": {"name": "cnet", "hparams": {"width": tune.choice([8, 16]), "depth": 3}}, "stage": "scratch"}
    assert searched_paths(space) == [("train", "lr"), ("train", "batch_size"), ("train", "weighted_sampling"),
                                     ("model", "hparams", "width")]


def test_a_run_is_named_for_its_stage_patient_and_searched_values():
    config = {"stage": "scratch", "patient": "208", "model": {"name": "cnn1d", "hparams": {}},
              "train": {"lr": 0.0123456, "batch_size": 16, "weighted_sampling": True, "epochs": 10}}
    searched = [("train", "lr"), ("train", "batch_size"), ("train", "weighted_sampling")]
    assert trial_run_name(config, searched, several_models=False) == "scratch 208 lr=0.0123 b=16 w"
    config["train"]["weighted_sampling"] = False
    assert trial_run_name(config, searched, several_models=False) == "scratch 208 lr=0.0123 b=16"


def test_a_fan_out_run_names_its_model_and_its_searched_hyperparameters():
    config = {"stage": "scratch", "patient": None, "model": {"name": "cnet_rr", "hparams": {"width": 32}},
              "train": {"class_weights": "balanced", "focal_gamma": 2.0}}
    searched = [("train", "class_weights"), ("train", "focal_gamma"), ("model", "hparams", "width")]
    assert trial_run_name(config, searched, several_models=True) == "scratch cnet_rr cw=balanced focal=2 width=32"


def test_split_profile_counts_examples_and_records_of_the_unit_patient():
    labels = np.array(["train", "train", "val", "test", "train", "test", ""])
    records = np.array(["100", "100", "100", "100", "208", "208", "208"])
    assert split_profile(labels, records, "100") == {"train": {"examples": 2, "records": 1},
                                                     "validation": {"examples": 1, "records": 1},
                                                     "test": {"examples": 1, "records": 1}}
    whole = split_profile(labels, records, None)
    assert whole["train"] == {"examples": 3, "records": 2} and whole["test"] == {"examples": 2, "records": 2}


def test_dataset_inputs_one_per_used_split_with_the_data_key_as_digest():
    profile = {"train": {"examples": 3, "records": 2}, "validation": {"examples": 0, "records": 0},
               "test": {"examples": 2, "records": 2}}
    inputs = dataset_inputs(dataset="mitdb", task="aami_beats", data_key="abc123", source="/data",
                            profile=profile, patient="208")
    assert [i.dataset.name for i in inputs] == ["mitdb/aami_beats 208:train", "mitdb/aami_beats 208:test"]
    assert {i.dataset.digest for i in inputs} == {"abc123"}
    assert [i.tags[0].value for i in inputs] == ["train", "test"]
    assert json.loads(inputs[1].dataset.profile) == {"examples": 2, "records": 2}
