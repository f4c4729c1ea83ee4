import dataclasses

import numpy as np
import pytest
import torch
from conftest import animalpose_subset

from aptrack.core.errors import ConfigError
from aptrack.core.layout import load_layout
from aptrack.data.datasets import load_keypoint_dataset
from aptrack.train.trainer import (
    CodecConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    Trainer,
    ema_decay_at,
    heatmap_loss,
    load_train_config,
    lr_at,
    update_ema,
)

AP10K = load_layout("ap10k")

TINY = TrainConfig(
    name="tiny", eval_every=100,
    model=ModelConfig(deconv_channels=(16, 16, 16), pretrained=None, frozen_stages=2),
    codec=CodecConfig(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.0, blur_kernel=3),
    optim=OptimConfig(epochs=2, batch_size=4, lr=1e-3, warmup_iters=2))


@pytest.fixture
def tiny_set(animalpose, tmp_path):
    path = animalpose_subset(tmp_path / "tiny.json", 6)
    return load_keypoint_dataset(path, animalpose / "images", AP10K)


def test_default_config_loads_and_matches_the_issue_budget():
    cfg = load_train_config("animalpose_mobilenetv2_160")
    assert cfg.layout == "ap10k" and cfg.model.pretrained == "mobilenetv2-imagenet"
    assert cfg.split.val_instances == 1100
    assert tuple(cfg.codec.input_size) == (160, 160)
    with pytest.raises(ConfigError, match="unknown training config"):
        load_train_config("nope")
    # Later stages: each starts from the previous stage's committed weights, on the same split.
    stages = [("animalpose_mobilenetv2_192_ft", "aptrack-pose-mnv2-160", 192),
              ("animalpose_mobilenetv2_224_ft", "aptrack-pose-mnv2-192", 224),
              ("animalpose_mobilenetv2_256_ft", "aptrack-pose-mnv2-224", 256),
              ("animalpose_mobilenetv2_256_ft2", "aptrack-pose-mnv2-256", 256),
              ("animalpose_mobilenetv2_256_ft3", "aptrack-pose-mnv2-256-ft2", 256),
              ("animalpose_mobilenetv2_256_ft4", "aptrack-pose-mnv2-256-ft3", 256)]
    for name, init, size in stages:
        stage = load_train_config(name)
        assert stage.model.init == init and stage.split == cfg.split, name
        assert stage.model.arch() == cfg.model.arch() and tuple(stage.codec.input_size) == (size, size)
        assert tuple(stage.codec.heatmap_size) == (size // 4, size // 4), name


def test_lr_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(lr=1.0, warmup_iters=4, min_lr_ratio=0.1)
    lrs = [lr_at(s, 14, cfg) for s in range(14)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lr_at(14, 14, cfg) == pytest.approx(0.1)


def test_heatmap_loss_ignores_unlabelled_keypoints():
    pred = torch.zeros(1, 2, 3, 3)
    target = torch.ones(1, 2, 3, 3)
    assert heatmap_loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.5)
    assert heatmap_loss(pred, target, torch.tensor([[0.0, 0.0]])).item() == 0.0


def test_training_steps_on_real_images_lower_the_loss(tiny_set, tmp_path):
    cfg = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, lr=3e-3))
    trainer = Trainer(cfg, tiny_set, None, tmp_path)
    trainer._set_train_mode()
    rows = np.arange(min(8, len(trainer.train_set)))
    images, targets, weights, skipped = trainer.batch(rows, np.random.default_rng(0))
    assert skipped == 0 and weights.sum() > 0

    def loss():
        with torch.no_grad():
            return heatmap_loss(trainer.model(images), targets, weights).item()

    def step():
        out = heatmap_loss(trainer.model(images), targets, weights)
        trainer.optimizer.zero_grad()
        out.backward()
        trainer.optimizer.step()

    before = loss()
    step()
    after_one = loss()
    assert after_one < before
    for _ in range(9):
        step()
    assert loss() < 0.9 * before  # measured: about 0.8 x after ten steps


def test_resume_continues_exactly(tiny_set, tmp_path):
    straight = Trainer(TINY, tiny_set, None, tmp_path / "a")
    straight.fit()
    first = Trainer(TINY, tiny_set, None, tmp_path / "b")
    first.fit(max_epochs=1)
    assert first.epoch == 1 and (tmp_path / "b" / "last.pt").is_file()
    resumed = Trainer(TINY, tiny_set, None, tmp_path / "b")
    resumed.fit(resume=True)
    assert resumed.epoch == straight.epoch == 2 and resumed.step == straight.step
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    from aptrack.models.checkpoint import load_checkpoint
    model, preset, meta = load_checkpoint(tmp_path / "b" / "model.pt")
    assert preset.input_size == (64, 64) and preset.layout == AP10K and meta["epoch"] == 2
    assert preset.name == "tiny" and preset.family == "simplebaseline" and preset.codec["sigma"] == 1.0


def test_ema_decay_ramps_up_to_its_target():
    assert ema_decay_at(1, 0.999, 0) == 0.999
    assert ema_decay_at(1, 0.999, 200) == pytest.approx(0.999 * (1 - np.exp(-1 / 200)))
    assert ema_decay_at(200, 0.999, 200) == pytest.approx(0.999 * (1 - np.exp(-1.0)))
    assert 0.99899 < ema_decay_at(5000, 0.999, 200) <= 0.999


def test_update_ema_averages_parameters_and_statistics_and_copies_counters():
    def net(value):
        m = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
        with torch.no_grad():
            for t in m.state_dict().values():
                t.fill_(value)
        return m
    ema, model = net(1.0), net(3.0)
    update_ema(ema, model, 0.75)   # 0.75 * 1 + 0.25 * 3
    state = ema.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        assert torch.allclose(state[name], torch.tensor(1.5)), name
    assert state["1.num_batches_tracked"].item() == 3
    assert model.state_dict()["0.weight"].eq(3.0).all()   # the source is left alone


def test_ema_training_saves_the_average_and_resumes_exactly(tiny_set, tmp_path):
    cfg = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, ema_decay=0.9, ema_ramp_iters=2))
    straight = Trainer(cfg, tiny_set, None, tmp_path / "a")
    start = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.fit()
    first = Trainer(cfg, tiny_set, None, tmp_path / "b")
    first.fit(max_epochs=1)
    resumed = Trainer(cfg, tiny_set, None, tmp_path / "b")
    resumed.fit(resume=True)
    for (name, a), b in zip(straight.ema.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b), name
    from aptrack.models.checkpoint import load_checkpoint
    saved = load_checkpoint(tmp_path / "b" / "model.pt")[0].state_dict()
    name = "final.weight"   # the last layer: trained, never frozen
    ema_w, raw_w, start_w = straight.ema.state_dict()[name], straight.model.state_dict()[name], start[name]
    assert torch.equal(saved[name], ema_w)               # the average is what gets saved
    assert not torch.equal(ema_w, raw_w) and not torch.equal(ema_w, start_w)


def test_resume_refuses_a_different_config(tiny_set, tmp_path):
    Trainer(TINY, tiny_set, None, tmp_path).fit(max_epochs=1)
    other = dataclasses.replace(TINY, seed=1)
    with pytest.raises(ConfigError, match="different training config"):
        Trainer(other, tiny_set, None, tmp_path).fit(resume=True)


def test_resume_from_a_corrupt_state_is_a_clear_error(tiny_set, tmp_path):
    (tmp_path / "last.pt").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match="not a readable training state"):
        Trainer(TINY, tiny_set, None, tmp_path).fit(resume=True)


def test_fine_tuning_starts_from_a_trained_checkpoint_at_another_input_size(tiny_set, tmp_path):
    first = Trainer(TINY, tiny_set, None, tmp_path / "a")
    first.fit(max_epochs=1)
    bigger = dataclasses.replace(TINY, seed=5, codec=dataclasses.replace(TINY.codec, input_size=(96, 96),
                                                                          heatmap_size=(24, 24)))
    tuned = Trainer(bigger, tiny_set, None, tmp_path / "b", init_path=tmp_path / "a" / "model.pt")
    for (name, a), b in zip(first.model.state_dict().items(), tuned.model.state_dict().values()):
        assert torch.equal(a, b), name   # seed 5 would have drawn other weights
    wider = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, deconv_channels=(32, 32, 32)))
    with pytest.raises(ConfigError, match="network differs"):
        Trainer(wider, tiny_set, None, tmp_path / "c", init_path=tmp_path / "a" / "model.pt")


def test_frozen_stem_keeps_its_weights(tiny_set, tmp_path):
    trainer = Trainer(TINY, tiny_set, None, tmp_path)
    stem = {k: v.clone() for k, v in trainer.frozen.state_dict().items()}
    trainer.fit(max_epochs=1)
    for k, v in trainer.frozen.state_dict().items():
        assert torch.equal(v, stem[k]), k  # weights and batch-norm statistics


def test_an_unreadable_image_is_skipped_not_fatal(tiny_set, tmp_path, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    files = tiny_set.files.copy()
    files[::2] = str(broken)  # every other animal's image is now unreadable
    ds = dataclasses.replace(tiny_set, files=files)
    trainer = Trainer(dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, epochs=1)),
                      ds, None, tmp_path)
    history = trainer.fit()
    used = trainer.steps_per_epoch * TINY.optim.batch_size
    order = np.random.default_rng([TINY.seed, 0]).permutation(len(ds))[:used]
    assert history[0]["skipped"] == int(np.sum(order % 2 == 0))
    assert np.isfinite(history[0]["loss"])
    assert "cannot read image" in caplog.text


def test_stage_configs_are_small_overrides_of_one_base(tmp_path):
    import yaml

    from aptrack.core import resources

    base = load_train_config("animalpose_mobilenetv2")
    for path in sorted(resources.folder("train").glob("animalpose_mobilenetv2_*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert raw["base"] == "animalpose_mobilenetv2"
        assert len(yaml.safe_dump(raw).splitlines()) <= 30  # only what the stage changes
        stage = load_train_config(path.stem)
        assert stage.name == path.stem
        # what a stage leaves out comes from the base, section by section
        assert stage.augment.brightness == base.augment.brightness and stage.optim.batch_size == 32
    last = load_train_config("animalpose_mobilenetv2_256_ft4")
    assert last.augment.scale_range == (0.85, 1.15) and last.optim.ema_decay == 0.998
    assert last.model.deconv_channels == base.model.deconv_channels == (128, 128, 128)
    # one level only: a base may not have a base of its own
    (tmp_path / "a.yaml").write_text("base: b.yaml\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("base: animalpose_mobilenetv2\nseed: 2\n")
    with pytest.raises(ConfigError, match="at most one base"):
        load_train_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: animalpose_mobilenetv2\noptim: {lr: 0.5, nope: 1}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(tmp_path / "c.yaml")
