"""TutorialSAC.train() against a transcription of the tutorial's update (tests/tutorial_reference.py).

Both start from the same weights (through ``load_tutorial_state``), see the same minibatches and the same torch
seed, and must agree on every parameter of the five networks and on log-alpha after hundreds of gradient
steps, and on the losses at every step.
"""

import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import Logger

from sb3_tutorial_sac import TutorialSAC, export_tutorial_state, load_tutorial_state
from tests.helpers import BATCH, make_minibatches, run_model
from tests.tutorial_reference import Tutorial

TOL = 1e-5
NETWORKS = ("model_action", "model_value1", "model_value2", "model_value_next1", "model_value_next2")


def run_reference(reference: Tutorial, batches, seed: int = 42) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    stats: dict[str, list] = {}
    for batch in batches:
        for key, value in reference.step(*batch).items():
            stats.setdefault(key, []).append(value)
    return {key: np.array(values) for key, values in stats.items()}


def max_param_diff(model: TutorialSAC, reference: Tutorial) -> dict[str, float]:
    exported, expected = export_tutorial_state(model), reference.state()
    diffs = {
        f"{net}.{name}": (exported[net][name] - expected[net][name]).abs().max().item()
        for net in NETWORKS
        for name in expected[net]
    }
    diffs["alpha"] = abs(exported["alpha"].item() - expected["alpha"].item())
    return diffs


def start_pair(**model_kwargs) -> tuple[TutorialSAC, Tutorial]:
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", **model_kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    torch.manual_seed(123)
    reference = Tutorial()
    load_tutorial_state(model, reference.state())
    return model, reference


def assert_same(model_stats, ref_stats, model, reference, keys=("critic1_loss", "critic2_loss", "actor_loss", "entropy")):
    for key in keys:
        np.testing.assert_allclose(model_stats[key], ref_stats[key], rtol=0, atol=TOL, err_msg=key)
    diffs = max_param_diff(model, reference)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL, f"{worst} differs by {diffs[worst]}"


@pytest.mark.parametrize("chunks", [[300], [200, 1, 99]])
def test_train_matches_tutorial(chunks):
    n_steps = sum(chunks)
    batches = make_minibatches(n_steps)
    model, reference = start_pair()
    start = export_tutorial_state(model)
    model_stats = run_model(model, batches, chunks)
    ref_stats = run_reference(reference, batches)
    assert len(model_stats["actor_loss"]) == n_steps
    assert_same(model_stats, ref_stats, model, reference, keys=(*ref_stats.keys(),))
    # Training moved every network and alpha well beyond the tolerance: the comparison is not vacuous
    end = export_tutorial_state(model)
    for net in NETWORKS:
        moved = max((end[net][k] - start[net][k]).abs().max().item() for k in end[net])
        assert moved > 100 * TOL, net
    assert abs(end["alpha"].item() - math.log(0.01)) > 100 * TOL
    assert model._n_updates == n_steps


def test_same_seed_gives_same_noise_as_rsample():
    """Noise draws: the actor draws exactly what Normal(mu, std).rsample() draws, in shape [batch, act]."""
    model, reference = start_pair()
    obs = torch.randn(BATCH, 3)
    torch.manual_seed(7)
    action, entropy = model.actor.action_entropy(obs)
    torch.manual_seed(7)
    ref_action, ref_entropy = reference.model_action(obs)
    assert torch.equal(model.policy.to_env_units(action), ref_action)
    assert torch.equal(entropy, ref_entropy)
    assert entropy.shape == (BATCH, 1)


class SwitchedTutorial(Tutorial):
    """The reference with one of its rules changed the way the corresponding TutorialSAC switch documents."""

    def __init__(
        self,
        entropy_term="tutorial",
        reward_shift=8.0,
        reward_scale=1 / 8,
        alpha_loss="tutorial",
        target_entropy=-1.0,
        lrs=(3e-4, 3e-3, 3e-4),
        init_alpha=0.01,
    ):
        super().__init__()
        self.entropy_term, self.reward_shift, self.reward_scale = entropy_term, reward_shift, reward_scale
        self.alpha_loss, self.target_entropy = alpha_loss, target_entropy
        with torch.no_grad():
            self.alpha.fill_(math.log(init_alpha))
        for optimizer, lr in zip((self.optimizer_action, self.optimizer_value1, self.optimizer_alpha), lrs):
            optimizer.param_groups[0]["lr"] = lr
        self.optimizer_value2.param_groups[0]["lr"] = lrs[1]
        if entropy_term == "correct":
            self.model_action.forward = self._correct_forward  # type: ignore[method-assign]

    def _correct_forward(self, state):
        m = self.model_action
        state = m.fc_state(state)
        dist = torch.distributions.Normal(m.fc_mu(state), m.fc_std(state))
        sample = dist.rsample()
        action = torch.tanh(sample)
        entropy = -(dist.log_prob(sample) - (1 - action**2 + 1e-7).log())  # tanh applied once
        return action * m.scale, entropy

    def step(self, state, action, reward, next_state, over):
        # Undo the tutorial's own normalisation inside step(), then apply this one
        reward = (reward + self.reward_shift) * self.reward_scale * 8 - 8
        if self.alpha_loss == "tutorial" and self.target_entropy == -1.0:
            return super().step(state, action, reward, next_state, over)
        return self._step_other_alpha(state, action, reward, next_state, over)

    def _step_other_alpha(self, state, action, reward, next_state, over):
        original = self.optimizer_alpha.step
        captured = {}

        def alpha_step():
            # replace the tutorial's alpha gradient by the switched loss's gradient, then step
            entropy = captured["entropy"]
            self.optimizer_alpha.zero_grad()
            if self.alpha_loss == "tutorial":
                loss = ((entropy - self.target_entropy) * self.alpha.exp()).mean()
            else:
                loss = (self.alpha * (entropy - self.target_entropy)).mean()
            loss.backward()
            original()

        get_loss_action = self.get_loss_action

        def capturing(state_):
            loss, entropy = get_loss_action(state_)
            captured["entropy"] = entropy.detach()
            return loss, entropy

        self.get_loss_action = capturing  # type: ignore[method-assign]
        self.optimizer_alpha.step = alpha_step  # type: ignore[method-assign]
        try:
            return super().step(state, action, reward, next_state, over)
        finally:
            del self.get_loss_action
            self.optimizer_alpha.step = original  # type: ignore[method-assign]


SWITCHES = [
    ({"entropy_term": "correct"}, {"entropy_term": "correct"}),
    ({"reward_shift": 0.0, "reward_scale": 1.0}, {"reward_shift": 0.0, "reward_scale": 1.0}),
    ({"reward_shift": 4.0, "reward_scale": 0.25}, {"reward_shift": 4.0, "reward_scale": 0.25}),
    ({"ent_coef_loss": "sb3"}, {"alpha_loss": "sb3"}),
    ({"target_entropy": -0.5}, {"target_entropy": -0.5}),
    ({"ent_coef": "auto"}, {"init_alpha": 1.0}),
    ({"ent_coef": "auto_0.2"}, {"init_alpha": 0.2}),
    (
        {"learning_rate": 1e-3, "critic_learning_rate": 1e-4, "ent_coef_learning_rate": 1e-2},
        {"lrs": (1e-3, 1e-4, 1e-2)},
    ),
]


@pytest.mark.parametrize(("model_kwargs", "ref_kwargs"), SWITCHES, ids=[str(s[0]) for s in SWITCHES])
def test_switch_changes_what_it_should(model_kwargs, ref_kwargs):
    batches = make_minibatches(200, seed=1)
    model, _ = start_pair(**model_kwargs)
    torch.manual_seed(123)
    switched = SwitchedTutorial(**ref_kwargs)
    load_tutorial_state(model, switched.state())
    model_stats = run_model(model, batches, [200])
    ref_stats = run_reference(switched, batches)
    assert_same(model_stats, ref_stats, model, switched)

    # ... and the switch did change the run: the default tutorial parts ways with it
    torch.manual_seed(123)
    default = Tutorial()
    default_stats = run_reference(default, batches)
    differs = max(np.abs(model_stats[k] - default_stats[k]).max() for k in ("critic1_loss", "actor_loss", "entropy"))
    differs = max(differs, max(max_param_diff(model, default).values()))
    assert differs > 1e-3


def test_fixed_ent_coef_keeps_alpha():
    batches = make_minibatches(50, seed=2)
    model, reference = start_pair(ent_coef=0.05)
    assert model.log_ent_coef is None and model.ent_coef_optimizer is None
    load_tutorial_state(model, {**reference.state(), "alpha": torch.tensor(math.log(0.05))})
    stats = run_model(model, batches, [50])
    np.testing.assert_allclose(stats["ent_coef"], 0.05, rtol=1e-6)
    assert np.all(stats["ent_coef_loss"] == 0)


def test_fast_path_matches_plain_module_path():
    """The fast engine (flat buffers, written-out backward passes, FlatAdam, functional forward) against the
    reference engine (module calls, autograd and torch's Adam.step())."""
    batches = make_minibatches(300, seed=3)
    fast, reference = start_pair(engine="fast")
    fast_stats = run_model(fast, batches, [300])

    plain, _ = start_pair(engine="reference")
    load_tutorial_state(plain, reference.state())
    plain_stats = run_model(plain, batches, [300])

    for key in fast_stats:
        np.testing.assert_array_equal(fast_stats[key], plain_stats[key], err_msg=key)
    fast_state, plain_state = export_tutorial_state(fast), export_tutorial_state(plain)
    for net in NETWORKS:
        for name, tensor in fast_state[net].items():
            assert torch.equal(tensor, plain_state[net][name]), (net, name)
    assert torch.equal(fast_state["alpha"], plain_state["alpha"])
    # and training moved them: the comparison is not vacuous (reference still holds the starting weights)
    assert max(max_param_diff(fast, reference).values()) > 1e-3


MANUAL_CASES = [
    # (action bounds, policy_kwargs, model kwargs)
    (((-2.0,), (2.0,)), {}, {}),
    (((-1.0, 0.0, -5.0), (3.0, 0.5, 5.0)), {}, {"entropy_term": "correct"}),
    (((-1.0, 0.0), (3.0, 0.5)), {"net_arch": {"pi": [32, 16], "qf": [32, 16, 8]}, "n_critics": 1}, {}),
    (((-1.0, 0.0), (3.0, 0.5)), {"net_arch": [24]}, {"ent_coef_loss": "sb3", "ent_coef": "auto"}),
    (((-1.0,), (1.0,)), {}, {"ent_coef": 0.1}),
]


@pytest.mark.parametrize(("bounds", "policy_kwargs", "kwargs"), MANUAL_CASES)
def test_written_out_backward_matches_autograd(bounds, policy_kwargs, kwargs):
    """sb3_tutorial_sac.manual (hand-written backward passes) against autograd, bit for bit, over 150 steps on
    asymmetric multi-dimensional actions, other widths and depths, one critic, both entropy terms, both
    temperature losses and a fixed alpha."""
    from tests.envs import BoxTargetEnv

    models = []
    for engine in ("fast", "reference"):
        env = BoxTargetEnv(obs_shape=(5,), low=bounds[0], high=bounds[1])
        model = TutorialSAC("MlpPolicy", env, seed=3, device="cpu", policy_kwargs=policy_kwargs, engine=engine, **kwargs)
        assert model.update_engine.name == engine
        model.set_logger(Logger(folder=None, output_formats=[]))
        model.learn(150)  # collects the same episodes: same seed, and no update before the first one ends
        models.append(model)
    manual_model, autograd_model = models
    assert manual_model._n_updates == autograd_model._n_updates == 150
    for (name, value), (_, expected) in zip(
        manual_model.policy.state_dict().items(), autograd_model.policy.state_dict().items(), strict=True
    ):
        assert torch.equal(value, expected), name
    if manual_model.log_ent_coef is not None:
        assert torch.equal(manual_model.log_ent_coef, autograd_model.log_ent_coef)
    for key, values in manual_model.last_train_stats.items():
        np.testing.assert_array_equal(values, autograd_model.last_train_stats[key], err_msg=key)
    start = TutorialSAC(
        "MlpPolicy", BoxTargetEnv(obs_shape=(5,), low=bounds[0], high=bounds[1]), seed=3, policy_kwargs=policy_kwargs, **kwargs
    )
    moved = max((a - b).abs().max().item() for a, b in zip(manual_model.policy.parameters(), start.policy.parameters()))
    assert moved > 1e-3


def test_other_networks_keep_autograd():
    """Networks the written-out backward does not cover (another activation, three critics, a non-flat
    observation) train through autograd."""
    from tests.envs import BoxTargetEnv

    with pytest.warns(UserWarning, match="Linear [+] ReLU"):
        tanh = TutorialSAC("MlpPolicy", BoxTargetEnv(), policy_kwargs={"activation_fn": torch.nn.Tanh})
    with pytest.warns(UserWarning, match="one or two critics, this model has 3"):
        three = TutorialSAC("MlpPolicy", BoxTargetEnv(), policy_kwargs={"n_critics": 3})
    # the reference engine is the engine for dict observations: no warning (tests/test_engines.py)
    dict_obs = TutorialSAC("MultiInputPolicy", BoxTargetEnv(obs_shape=None))
    for model in (tanh, three, dict_obs):
        assert model.update_engine.name == "reference"
        model.learn(100)
        assert model._n_updates == 100


def test_actor_function_calls_match_module_calls():
    """The actor's forward pass for flat Box observations (layers as function calls, used by predict() and
    collection) gives the numbers of SB3's module path (extract_features, then the modules)."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"net_arch": {"pi": [32, 16], "qf": [8]}})
    actor = model.actor
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(7)]))
    mu, std = actor.get_action_dist_params(obs)
    latent = actor.latent_pi(actor.extract_features(obs, actor.features_extractor))
    assert torch.equal(mu, actor.mu(latent)) and torch.equal(std, actor.std(latent))
    assert mu.shape == std.shape == (7, 1) and bool((std > 0).all())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_short_path_matches_sb3_predict(dtype):
    """TutorialSACPolicy.predict's short path for a batch of flat Box observations gives SB3's predict()'s actions
    bit for bit, draws the same noise (the generator ends in the same state), and accepts read-only arrays."""
    from stable_baselines3.common.policies import BasePolicy

    from tests.envs import BoxTargetEnv

    model = TutorialSAC("MlpPolicy", BoxTargetEnv(obs_shape=(3,), low=(-1.0,), high=(3.0,)), seed=0)
    policy = model.policy
    obs = np.stack([model.observation_space.sample() for _ in range(5)]).astype(dtype)
    obs.flags.writeable = False
    for deterministic in (False, True):
        torch.manual_seed(1)
        short, state = policy.predict(obs, deterministic=deterministic)
        after_short = torch.rand(1)
        torch.manual_seed(1)
        sb3, _ = BasePolicy.predict(policy, obs, deterministic=deterministic)
        assert torch.equal(torch.rand(1), after_short)
        assert state is None and short.dtype == sb3.dtype and short.shape == sb3.shape == (5, 1)
        assert np.array_equal(short, sb3)
        assert np.all((short >= -1.0) & (short <= 3.0))
    # a single observation (not vectorised) and a wrong shape take SB3's path, with its shape and its error
    assert policy.predict(obs[0], deterministic=True)[0].shape == (1,)
    with pytest.raises(ValueError, match="Error: Unexpected observation shape"):
        policy.predict(np.zeros((2, 4), np.float32))


def test_predict_reads_the_actor_anew_after_every_change():
    """predict's plain layers (PlainActor) follow every change of the actor: in-place updates, a replaced module or
    parameter, parameter memory swapped (``.data = ...``), a changed Softplus, forward hooks (own and global), each
    time giving SB3's predict()'s actions bit for bit."""
    from stable_baselines3.common.policies import BasePolicy

    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)
    policy, actor = model.policy, model.actor
    obs = np.stack([model.observation_space.sample() for _ in range(4)])

    def agree() -> np.ndarray:
        for deterministic in (True, False):
            torch.manual_seed(3)
            mine = policy.predict(obs, deterministic=deterministic)[0]
            torch.manual_seed(3)
            assert np.array_equal(mine, BasePolicy.predict(policy, obs, deterministic=deterministic)[0])
        return mine

    before = agree()
    changes = [
        lambda: actor.mu.weight.data.add_(0.5),  # in place, as training writes
        lambda: setattr(actor, "mu", torch.nn.Linear(128, 1)),  # a new module
        lambda: setattr(actor.latent_pi[0], "bias", torch.nn.Parameter(torch.ones(128))),  # a new parameter
        lambda: setattr(actor.std[0].weight, "data", torch.full((1, 128), 0.01)),  # new memory
        lambda: setattr(actor.std[1], "beta", 3.0),  # a Softplus setting
        lambda: actor.mu.register_forward_hook(lambda module, inputs, output: output + 0.25),
        lambda: actor.latent_pi.register_forward_pre_hook(lambda module, inputs: (inputs[0] * 2,)),
    ]
    for change in changes:
        change()
        after = agree()
        assert not np.array_equal(after, before)
        before = after
    assert actor.plain_layers() is None  # forward hooks set: the actor is called as a module
    kept = actor._plain
    agree()
    assert actor._plain is kept  # and the reading is kept, not redone at every call
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: calls.append(module))
    try:
        agree()
    finally:
        handle.remove()
    assert actor.mu in calls
    for module in (actor.mu, actor.latent_pi):  # no hook left: plain again, the same numbers
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    assert actor.plain_layers() is not None
    agree()


def test_function_calls_keep_hooks():
    """call_layers calls a module with hooks (its own, on a container, or global) as a module, so the hooks run."""
    from sb3_tutorial_sac.policies import call_layers

    torch.manual_seed(0)
    x = torch.randn(4, 3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(5, 2)))
    assert torch.equal(call_layers(net, x), net(x))
    handle = net[2].register_forward_hook(lambda module, inputs, output: output * 2)
    assert torch.equal(call_layers(net, x), net(x))
    assert torch.equal(call_layers(net, x), 2 * net[2][0](net[1](net[0](x))))
    handle.remove()
    handle = net.register_forward_hook(lambda module, inputs, output: output + 1)
    assert torch.equal(call_layers(net, x), net(x))
    handle.remove()
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: calls.append(module))
    try:
        call_layers(net, x)
    finally:
        handle.remove()
    assert calls.count(net[0]) == 1 and calls.count(net) == 1


def test_flat_adam_equals_torch_adam_per_group():
    """FlatAdam (one update over both critics' groups) against torch's Adam.step() on separate tensors, bit for
    bit, including after a state_dict round trip; it declines groups with different learning rates."""
    from sb3_tutorial_sac.flat import FlatAdam, FlatParameters

    torch.manual_seed(0)
    shapes = [(5, 3), (5,), (1, 5), (4, 3), (4,)]
    plain = [torch.nn.Parameter(torch.randn(shape)) for shape in shapes]
    flat_params = [torch.nn.Parameter(p.detach().clone()) for p in plain]
    reference = torch.optim.Adam([{"params": plain[:3]}, {"params": plain[3:]}], lr=3e-3)
    flat = FlatParameters(flat_params, [3, 2])
    optimizer = torch.optim.Adam([{"params": flat_params[:3]}, {"params": flat_params[3:]}], lr=3e-3)
    from sb3_tutorial_sac.flat import rehome_optimizer

    rehome_optimizer(optimizer, [flat_params[:3], flat_params[3:]], flat.segments)
    flat_adam = FlatAdam(optimizer, flat)
    for step in range(60):
        grads = [torch.randn(shape) for shape in shapes]
        for p, g in zip(plain, grads):
            p.grad = g.clone()
        for p, g in zip(flat_params, grads):
            p.grad.copy_(g)
        reference.step()
        if step == 30:  # a save/load: the states stop being views of one buffer, prepare() joins them again
            optimizer.load_state_dict(optimizer.state_dict())
        assert flat_adam.prepare()
        flat_adam.step()
    for p, q in zip(plain, flat_params):
        assert torch.equal(p.detach(), q.detach())
    for group, (start, end) in zip(optimizer.param_groups, [(0, 3), (3, 5)]):
        state = optimizer.state[group["params"][0]]
        assert float(state["step"]) == 60
        expected = torch.cat([reference.state[p]["exp_avg"].reshape(-1) for p in plain[start:end]])
        assert torch.equal(state["exp_avg"], expected)
    optimizer.param_groups[1]["lr"] = 1e-3
    assert not flat_adam.prepare()


def test_nothing_kept_from_the_inference_mode_loop_is_an_inference_tensor():
    """train()'s written-out loop runs in inference mode; what the model keeps (parameters, gradients, Adam
    states, log-alpha) stays ordinary, so that the user's in-place operations and torch's own optimisers work."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(400)
    assert model._n_updates == 400 and model.update_engine.name == "fast"
    tensors = [model.log_ent_coef, model.log_ent_coef.grad, *model.policy.parameters(), *model.policy.buffers()]
    tensors += [p.grad for p in model.policy.parameters() if p.grad is not None]
    for optimizer in (model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer):
        tensors += [value for state in optimizer.state.values() for value in state.values()]
    assert len(tensors) > 20 and not any(tensor.is_inference() for tensor in tensors)
    for optimizer in (model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer):
        optimizer.step()  # torch's own Adam, in place on everything above
        optimizer.zero_grad(set_to_none=False)
    model.learn(200, reset_num_timesteps=False)
    assert model._n_updates == 600
