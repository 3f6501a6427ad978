"""The Ray a search runs on: joined or started, with what trials must see, and SIGTERM stopping the search
as Ctrl-C does."""

from __future__ import annotations

import logging
import os

from ecgtune.errors import EcgtuneError


def refuse_another_users_cluster(gcs_address: str) -> None:
    """``--address auto`` takes whatever Ray runs on this machine: refuse (and leave) one another user
    started, whose trials and results would then be shared with them."""
    import getpass

    import ray

    from ecgtune.tuning.targets import listener_user

    owner = listener_user(int(gcs_address.rsplit(":", 1)[1]))
    me = getpass.getuser()
    if owner is not None and owner != me:
        ray.shutdown()
        raise EcgtuneError(f"--address auto: the Ray cluster on this machine ({gcs_address}) was started by user "
                           f"{owner!r}, not {me!r}; give --address {gcs_address} to join it on purpose, or leave "
                           "--address out for a Ray of your own")

def init_ray(address: str | None, tracking_uri: str) -> None:
    import ray

    # A checkpoint is kept per trial (num_to_keep=1), which makes Tune snapshot its state at every
    # improvement; on local storage that is cheap, so its warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a status box per Tune run; TrialLines reports progress instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    # Trials see the driver's tracking server (for code of theirs that logs to MLflow, as a Tune user
    # expects); ecgtune's own trial runs are written by the driver, so no credentials travel with it.
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": tracking_uri}}
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        except ConnectionError as exc:  # --address auto with no cluster on this machine, a head gone since
            raise EcgtuneError(f"--address {address}: no Ray cluster to join ({' '.join(str(exc).split())[:300]}); "
                               "start one (ray up cluster.yaml / ray start --head) or leave --address out "
                               "for a local Ray") from None
        if address == "auto":
            refuse_another_users_cluster(ray.get_runtime_context().gcs_address)
    else:
        ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False)

def stop_on_sigterm() -> None:
    """SIGTERM (what `ray job stop` and most schedulers send) stops a search as Ctrl-C does: Tune saves its
    state, the runs are closed as KILLED, and --resume goes on. Installed after ray.init, whose own handler
    would abort the process with a stack dump."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))

def cluster_notes(address: str | None, tracking_uri: str, storage_path: str) -> list[str]:
    """What a search on a cluster should be told about places only this machine reaches."""
    from ecgtune.paths import is_uri

    if not address:
        return []
    notes = []
    if not is_uri(storage_path):
        notes.append(
            f"Ray results and checkpoints go to {storage_path}: every node of the cluster must reach it "
            "(a shared mount), else use --storage-path s3://... (or ECGTUNE_STORAGE_PATH)"
        )
    if tracking_uri.startswith("sqlite:"):
        notes.append(
            f"MLflow runs go to {tracking_uri} on this machine only; give --mlflow-uri http://<server> "
            "(or MLFLOW_TRACKING_URI) to keep them beyond this cluster"
        )
    return notes
