"""pipeline: file batches are a function of (run seed, epoch) alone, whatever the number of workers; tensor batches
index the device split; evaluation batches keep the split's order."""

from __future__ import annotations


import torch

from tests.conftest import with_config
from harness import data, pipeline, spec


def cub_run() -> spec.Run:
    run = next(r for r in spec.load("cub_cars", "smoke").runs
               if r.axes.get("dataset") == "cub200_sample" and r.axes["batch"] == 6)
    return with_config(run, run.config.model_copy(
        update={"train": run.config.train.model_copy(update={"batch_size": 5})}))


def file_pipeline(run: spec.Run, root, workers: int, seed: int = 0) -> pipeline.TensorPipeline:
    dataset = data.load("cub200_sample", root)
    return pipeline.for_split(dataset.train, run.config, torch.Generator().manual_seed(seed), device=torch.device("cpu"),
                              memory_format=torch.contiguous_format, workers=workers)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) and torch.equal(u, v) for (x, u), (y, v) in zip(a, b))


def test_file_batches_do_not_depend_on_the_workers(tmp_path):
    run = cub_run()
    rng_before = torch.get_rng_state()
    serial = file_pipeline(run, tmp_path, workers=0)
    epoch1, epoch2 = list(serial.batches(1)), list(serial.batches(2))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is neither used nor moved
    assert [len(y) for _, y in epoch1] == [5, 5, 2] and epoch1[0][0].shape == (5, 3, 64, 64)
    parallel = file_pipeline(run, tmp_path, workers=2)
    assert same(epoch1, list(parallel.batches(1)))  # per-sample seeds: not a pixel moves
    assert not same(epoch1, epoch2)  # each epoch has its own crops and flips
    # A resumed run asks for epoch 2 directly and gets the same batches, given the same batch-order state.
    resumed = file_pipeline(run, tmp_path, workers=2)
    resumed.order.set_state(serial.order.get_state())
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(list(resumed.batches(3)), list(serial.batches(3))))


def test_evaluation_batches_keep_the_file_order(tmp_path):
    run = cub_run()
    pipe = file_pipeline(run, tmp_path, workers=0)
    split = data.load("cub200_sample", tmp_path).test
    batches = list(pipe.eval_batches(split, 5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert torch.equal(torch.cat(batches), torch.cat(list(pipe.eval_batches(split, 12))))


def test_the_split_chooses_its_pipeline(tmp_path):
    digits = data.load("digits")
    assert digits.train.kind == "tensor" and data.load("cub200_sample", tmp_path).train.kind == "files"
    run = next(r for r in spec.load("loss_epochs", "smoke").runs)
    pipe = pipeline.for_split(digits.train, run.config, torch.Generator().manual_seed(0), device=torch.device("cpu"),
                              memory_format=torch.contiguous_format)
    assert type(pipe) is pipeline.TensorPipeline
    images, labels = next(iter(pipe.batches(1)))
    assert images.shape[1:] == (1, 8, 8) and len(labels) == run.config.train.batch_size
