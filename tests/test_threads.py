"""Torch's process-wide state under eval's --jobs (methods run in threads of one process)."""

import threading

import torch

from z2h.hero_stage import HeroConfig
from z2h.hero_stage.offline import OfflineHeroStage


def test_a_restorer_built_while_another_method_seeds_gets_its_own_initial_weights(monkeypatch):
    """Method A seeds torch and builds its restorer; method B, in another thread, seeds and builds its own
    in between. Torch's default generator is one per process, so without a lock B's draws land in A's
    initial weights, and the same edit scored 30.79 or 32.09 dB depending on scheduling."""
    import z2h.models.restorer as restorer_module

    cfg = HeroConfig(engine="offline", seed=0)
    alone = OfflineHeroStage(cfg).new_model().state_dict()
    real_init = restorer_module.Restorer.__init__
    a_seeded, b_seeded, a_built = threading.Event(), threading.Event(), threading.Event()

    def init(self, *args, **kwargs):  # runs after the seeding, before the draws
        if threading.current_thread().name == "A":
            a_seeded.set()
            b_seeded.wait(0.5)  # B gets this long to seed while A is about to draw
        else:
            b_seeded.set()
            a_built.wait(0.5)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(restorer_module.Restorer, "__init__", init)
    built = {}

    def method_a():
        built["a"] = OfflineHeroStage(cfg).new_model().state_dict()
        a_built.set()

    def method_b():
        a_seeded.wait(5)
        OfflineHeroStage(HeroConfig(engine="offline", seed=7)).new_model()

    workers = [threading.Thread(target=method_a, name="A"), threading.Thread(target=method_b, name="B")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    assert all(torch.equal(alone[k], built["a"][k]) for k in alone)
