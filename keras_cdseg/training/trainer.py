"""`train()`: the iteration-based adversarial training behind `cdseg train`.

Length is counted in steps (the paper: 100000). Keras `fit` runs "epochs" of `val_every` steps over an
infinite, step-indexed `tf.data` stream, so the progress bar, history and validation line up with steps; a
resumed run restarts the stream at its checkpoint's step and, if that falls inside an epoch, finishes that
epoch first.
"""

import contextlib
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_cdseg import __version__
from keras_cdseg.data.augmentation import augmentation_preset
from keras_cdseg.data.pipeline import make_training_dataset
from keras_cdseg.model_card import default_largest_component_classes
from keras_cdseg.distribute import KerasDistribution, make_strategy, needs_synchronized_batch_norm
from keras_cdseg.errors import InputError, TrainingError
from keras_cdseg.inference.quality.assess import calibrate_run
from keras_cdseg.inference.quality.estimate import DISCRIMINATOR_FILE, QUALITY_JSON, save_discriminator
from keras_cdseg.io_utils import atomic_path, write_json_atomic
from keras_cdseg.models.cross_domain_model import CrossDomainModel
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter
from keras_cdseg import run_dir as layout
from keras_cdseg.training import determinism
from keras_cdseg.training.callbacks import HistoryWriter, ProgressLog, StepControl, read_history
from keras_cdseg.training.checkpoints import make_training_state
from keras_cdseg.training.data_setup import prepare_training_data
from keras_cdseg.training.validation import ValidationCallback


def epoch_segments(start_step, total_steps, steps_per_epoch):
    """Splits [start_step, total_steps) into `fit` calls of whole epochs: (initial_epoch, epochs, steps_per_epoch).

    >>> epoch_segments(250, 1000, 100)
    [(2, 3, 50), (3, 10, 100)]
    """
    segments, step = [], start_step
    while step < total_steps:
        epoch = step // steps_per_epoch
        epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
        if step % steps_per_epoch or epoch_end - step < steps_per_epoch:
            segments.append((epoch, epoch + 1, epoch_end - step))
            step = epoch_end
        else:
            last_epoch = total_steps // steps_per_epoch
            segments.append((epoch, last_epoch, steps_per_epoch))
            step = last_epoch * steps_per_epoch
    return segments


def build_model(run_config, num_classes, class_names, synchronized, modality_names=None):
    """The compiled model of a run (call inside the strategy scope).

    `CrossDomainModel` for the paper's network and Att-DCN; `ConditionalDomainModel` for Cond-DCN, which
    is given `modality_names` (the one-hot order of its modality targets).
    """
    data, model_config, train_config = run_config.data, run_config.model, run_config.train
    keras.utils.set_random_seed(train_config.seed)
    input_shape = (data.image_size, data.image_size, data.num_channels)
    kwargs = dict(
        num_classes=num_classes,
        preset=model_config.preset,
        base_filters=model_config.base_filters,
        depth=model_config.depth,
        norm=model_config.norm,
        norm_order=model_config.norm_order,
        synchronized=synchronized,
    )
    if model_config.architecture == "attention":
        from keras_cdseg.models.attention_unet import build_attention_segmenter

        generator = build_attention_segmenter(input_shape, **kwargs)
    elif model_config.architecture == "conditional":
        from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter

        generator = build_conditional_segmenter(input_shape, num_modalities=len(modality_names), **kwargs)
    else:
        generator = build_segmenter(input_shape, **kwargs)
    discriminator = None
    if train_config.adversarial_weight > 0:
        discriminator = build_discriminator(norm=model_config.norm or "batch", synchronized=synchronized)
    optimizers = (
        keras.optimizers.Adam(learning_rate_schedule(train_config.learning_rate, train_config)),
        keras.optimizers.Adam(learning_rate_schedule(train_config.d_learning_rate, train_config)),
    )
    # JAX always compiles the step (un-jitted, it would run op by op); --jit-compile is TensorFlow's choice.
    jit_compile = train_config.jit_compile or keras.backend.backend() == "jax"
    compile_kwargs = dict(
        adversarial_weight=train_config.adversarial_weight, seg_loss=train_config.loss, jit_compile=jit_compile
    )
    if model_config.architecture == "conditional":
        from keras_cdseg.models.conditional_domain_model import ConditionalDomainModel

        model = ConditionalDomainModel(generator, discriminator, class_names=class_names, modality_names=modality_names)
        model.compile(*optimizers, modality_weight=train_config.modality_weight, **compile_kwargs)
    else:
        model = CrossDomainModel(generator, discriminator, class_names=class_names)
        model.compile(*optimizers, **compile_kwargs)
    return model


def learning_rate_schedule(learning_rate, train_config):
    """The learning rate of `train_config.lr_schedule` over `train_config.steps` (a float when constant).

    Built-in Keras schedules keep the optimizer serializable; they read the optimizer's own iteration
    counter, which checkpoints restore, so a resumed run continues on the same curve.
    """
    if train_config.lr_schedule == "poly":
        return keras.optimizers.schedules.PolynomialDecay(learning_rate, train_config.steps, 0.0, power=0.9)
    if train_config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, train_config.steps, alpha=0.0)
    return learning_rate


def training_modalities(run_config, data):
    """Modality names a Cond-DCN model is trained to recognise (sorted); None for every other model."""
    if run_config.model.architecture != "conditional":
        return None
    modalities = {data.modality_of[case_id] for case_id in data.train_ids}
    if None in modalities:
        raise InputError(run_config.data_dir, "Cond-DCN needs a 'modality' for every training case in dataset.json")
    return sorted(modalities)


def train(run_config, run_dir, resume=False, verbose="auto", log=None):
    """Trains (or resumes) a run; returns the summary written to RUN_DIR/summary.json.

    Args:
        run_config: `RunConfig`. On resume, the run's own config (with a possibly larger `steps`).
        run_dir: str or Path. Created for a new run; must not already hold a run unless `resume`.
        resume: bool. Continue from the latest checkpoint in `run_dir`.
        verbose: Keras `fit` verbosity ("auto", 0, 1, 2).
        log: callable(str) for status lines. Defaults to printing on stderr.

    Raises:
        InputError: bad dataset or settings, detected before the first step.
        TrainingError: the loss became non-finite; the last good checkpoint is kept.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    run_dir = Path(run_dir)
    train_config = run_config.train
    determinism.enable(train_config)
    strategy = make_strategy(train_config.strategy, train_config.cpu_replicas)
    is_chief, worker_dir = _worker_role(strategy, run_dir)
    record = _check_run_dir(run_dir, resume)
    _check_jit_support(train_config, strategy)
    _set_precision(train_config.mixed_precision, log)

    cache_dir = Path(run_config.cache_dir) if run_config.cache_dir else run_dir / layout.CACHE_DIR
    data = prepare_training_data(
        run_config, cache_dir, split=record.get("split") if resume else None, progress=verbose != 0
    )
    num_replicas = strategy.num_replicas_in_sync
    global_batch = train_config.batch_size * num_replicas
    run_config = dataclasses.replace(run_config, model=dataclasses.replace(run_config.model, num_classes=data.num_classes))
    if is_chief:
        _write_config(run_dir, run_config, data, strategy, global_batch)
    log(_describe(data, strategy, train_config, global_batch))

    modality_names = training_modalities(run_config, data)
    with strategy.scope():
        model = build_model(
            run_config, data.num_classes, data.class_names, needs_synchronized_batch_norm(strategy), modality_names
        )
    state = make_training_state(model, worker_dir / layout.CHECKPOINT_DIR, train_config.keep_checkpoints)
    start_step, best_score = 0, float("-inf")
    if resume:
        restored = state.restore_latest()
        if restored is not None:
            start_step, best_score = restored
        log(f"resuming at step {start_step} of {train_config.steps}")
    history_rows = read_history(worker_dir / layout.HISTORY_FILE, max_step=start_step) if resume else []
    best_step = _best_step(history_rows, best_score)

    def save(step, score):
        state.save(step, score)
        _save_keras(model.generator, worker_dir / layout.LAST_GENERATOR)
        if model.discriminator is not None:  # the critic of the per-scan quality estimate
            save_discriminator(model.discriminator, worker_dir / DISCRIMINATOR_FILE, model.generator.input_shape[1:],
                               data.num_classes)  # fmt: skip

    control = StepControl(
        save, start_step, train_config.checkpoint_every, train_config.val_every, train_config.steps, best_score, best_step
    )
    writer = tf.summary.create_file_writer(str(worker_dir / layout.LOG_DIR))
    validation = ValidationCallback(
        model.generator,
        data,
        run_config.data.context,
        control,
        train_config.val_max_cases,
        save_best=lambda step: _save_keras(model.generator, worker_dir / layout.BEST_GENERATOR),
        writer=writer,
        largest_component_classes=list(default_largest_component_classes(data.labels)),
    )
    history = HistoryWriter(worker_dir / layout.HISTORY_FILE, control, history_rows, writer)
    # Order matters at epoch end: validation adds val_* to the logs, history records them, control checkpoints.
    callbacks = [validation, history, control]
    if verbose == 0:  # no Keras progress bar: a line per epoch instead
        callbacks.append(ProgressLog(control, log))

    started = time.perf_counter()
    with _stop_on_sigint(control, log):
        for initial_epoch, epochs, steps_per_epoch in epoch_segments(start_step, train_config.steps, train_config.val_every):
            dataset = make_training_dataset(
                data.cache,
                data.train_ids,
                run_config.data,
                batch_size=global_batch,
                seed=train_config.seed,
                augment=augmentation_preset(train_config.augmentation) if train_config.augment else False,
                num_classes=data.num_classes,
                foreground_weight=train_config.foreground_weight,
                sampling=train_config.sampling,
                start_step=control.step,
                modality_names=modality_names,
            )
            options = tf.data.Options()
            # Batches are drawn from a step counter, not read from files: shard by element across workers.
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            model.fit(
                dataset.with_options(options),
                steps_per_epoch=steps_per_epoch,
                initial_epoch=initial_epoch,
                epochs=epochs,
                callbacks=callbacks,
                verbose=verbose,
                # The pipeline draws its own (seeded, resumable) order; Keras cannot shuffle a tf.data.Dataset
                # and warns on every run when asked to.
                shuffle=False,
            )
            if control.stopped:
                break

    if control.failure is not None:
        failure = control.failure
        last_good = state.latest_step
        raise TrainingError(
            f"{failure['metric']} became {failure['value']} at step {failure['step']}; training stopped. "
            f"Last good checkpoint: {'step ' + str(last_good) if last_good is not None else 'none'} in "
            f"{worker_dir / layout.CHECKPOINT_DIR} (start again with a lower --learning-rate)."
        )
    if control.step != control.last_saved_step:
        control.save()
    status = "interrupted" if control.interrupted else "finished"
    summary = {
        "status": status,
        "steps_done": control.step,
        "steps_total": train_config.steps,
        "best_val_score": None if best_step is None and control.best_step is None else control.best_score,
        "best_step": control.best_step,
        "wall_s_this_session": round(time.perf_counter() - started, 1),
        "global_batch_size": global_batch,
        "num_replicas": num_replicas,
        "last_history_row": history.rows[-1] if history.rows else None,
    }
    if status == "finished" and is_chief:
        summary["quality_calibration"] = (_calibrate_quality(worker_dir, log) if train_config.quality_calibration
                                          else "disabled")  # fmt: skip
    write_json_atomic(worker_dir / layout.SUMMARY_FILE, summary)
    log(
        f"{status} at step {control.step}/{train_config.steps}; "
        + (f"best val_score {control.best_score:.2f} at step {control.best_step}; " if control.best_step else "")
        + f"run directory: {worker_dir}"
    )
    return summary


def _worker_role(strategy, run_dir):
    """(is_chief, directory this process writes to). Non-chief workers write beside the chief's files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, run_dir
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs):
        return True, run_dir
    return False, run_dir / f"{task_type}_{task_id}"


def _check_run_dir(run_dir, resume):
    config_path = run_dir / layout.CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise InputError(run_dir, "nothing to resume: no config.json (start a new run with --out)")
        return json.loads(config_path.read_text())
    if config_path.exists():
        raise InputError(run_dir, "already holds a run; resume it with --resume or choose another --out")
    if run_dir.exists() and any(p.name != layout.CACHE_DIR for p in run_dir.iterdir()):
        raise InputError(run_dir, "output directory exists and is not empty")
    return {}


def _write_config(run_dir, run_config, data, strategy, global_batch):
    import platform

    write_json_atomic(
        run_dir / layout.CONFIG_FILE,
        {
            "run": run_config.to_dict(),
            "labels": data.labels,
            "class_names": data.class_names,
            "split": data.split_record(),
            "modality_of": data.modality_of,
            "resolved": {
                "backend": keras.backend.backend(),
                "strategy": strategy_name(strategy),
                "num_replicas": strategy.num_replicas_in_sync,
                "global_batch_size": global_batch,
            },
            "versions": {
                "keras_cdseg": __version__,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                **_backend_version(),
                "python": platform.python_version(),
            },
        },
    )


def _describe(data, strategy, train_config, global_batch):
    def count(ids):
        groups = {}
        for case_id in ids:
            groups[str(data.modality_of.get(case_id))] = groups.get(str(data.modality_of.get(case_id)), 0) + 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(groups.items()))

    return (
        f"training cases {len(data.train_ids)} ({count(data.train_ids)}), validation cases {len(data.val_ids)} "
        f"({count(data.val_ids)}); classes {data.class_names}; {keras.backend.backend()} backend, "
        f"{strategy_name(strategy)} with "
        f"{strategy.num_replicas_in_sync} replica(s): global batch {train_config.batch_size} x "
        f"{strategy.num_replicas_in_sync} = {global_batch}; adversarial weight {train_config.adversarial_weight}"
    )


def strategy_name(strategy):
    """`MirroredStrategy`, `DataParallel`, `SingleDevice`, ...: what distributes training."""
    return strategy.name if isinstance(strategy, KerasDistribution) else type(strategy).__name__


def _backend_version():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return {}
    module = __import__(backend)
    return {backend: module.__version__}


def _check_jit_support(train_config, strategy):
    # Both combinations crash inside TensorFlow's XLA CPU compiler with messages that do not point at the
    # option. JAX always compiles with XLA and handles both.
    if keras.backend.backend() != "tensorflow":
        return
    if not train_config.jit_compile or tf.config.list_physical_devices("GPU"):
        return
    if strategy.num_replicas_in_sync > 1:
        raise InputError(
            "--jit-compile", "XLA cannot compile a step mirrored over CPU devices (XLA known issue); drop one option"
        )
    if train_config.mixed_precision:
        raise InputError("--jit-compile", "XLA on CPU rejects the bfloat16 mixed-precision step; drop one option")


def _set_precision(mixed, log):
    if not mixed:
        keras.mixed_precision.set_global_policy("float32")
        return
    # float16 needs a GPU to be fast; CPUs with AVX-512 BF16 run bfloat16 natively and need no loss scaling.
    # Off TensorFlow, bfloat16 everywhere (JAX on GPU runs it natively, without loss scaling).
    on_gpu = keras.backend.backend() == "tensorflow" and tf.config.list_physical_devices("GPU")
    policy = "mixed_float16" if on_gpu else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    log(f"mixed precision: {policy}")


def _best_step(rows, best_score):
    for row in rows:
        if row.get("val_score") == best_score:
            return row["step"]
    return None


def _calibrate_quality(run_dir, log):
    """RUN/quality.json (per-scan quality estimate, docs/quality.md); a failure is logged, never fatal."""
    try:
        record = calibrate_run(run_dir, log=log)
    except Exception as e:  # noqa: BLE001 - the trained model matters more than its quality calibration
        log(f"warning: no quality calibration ({type(e).__name__}: {e})")
        return None
    return {"file": QUALITY_JSON, "num_samples": record["model"]["num_samples"], "seconds": record["seconds"]}


def _save_keras(model, path):
    with atomic_path(path) as tmp:
        model.save(tmp)


@contextlib.contextmanager
def _stop_on_sigint(control, log):
    """First Ctrl-C: finish the current step, checkpoint, stop. A second one aborts at once."""

    def handler(signum, frame):
        if control.interrupted:
            raise KeyboardInterrupt
        log("interrupt: saving a checkpoint after the current step (press Ctrl-C again to abort)")
        control.request_stop()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. a notebook worker): keep the default behaviour
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
