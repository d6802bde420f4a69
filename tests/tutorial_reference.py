"""A transcription of the tutorial's update (../shared/seed/, docs/variant.md), independent of the package.

Written from the notebook as it is: the same modules, parameter names, formulas, operation order,
optimisers and noise draws. Only the hard-coded sizes (3 observations, 1 action, the x2 scale) are
parameters, and the minibatch comes from the caller instead of ``random.sample``.
"""

import math

import torch


class ModelAction(torch.nn.Module):
    def __init__(self, obs_dim: int = 3, act_dim: int = 1, scale: float = 2.0, width: int = 128):
        super().__init__()
        self.scale = scale
        self.fc_state = torch.nn.Sequential(
            torch.nn.Linear(obs_dim, width),
            torch.nn.ReLU(),
        )
        self.fc_mu = torch.nn.Linear(width, act_dim)
        self.fc_std = torch.nn.Sequential(
            torch.nn.Linear(width, act_dim),
            torch.nn.Softplus(),
        )

    def forward(self, state):
        state = self.fc_state(state)
        mu = self.fc_mu(state)
        std = self.fc_std(state)
        dist = torch.distributions.Normal(mu, std)
        sample = dist.rsample()
        action = torch.tanh(sample)
        log_prob = dist.log_prob(sample)
        entropy = log_prob - (1 - action.tanh() ** 2 + 1e-7).log()
        entropy = -entropy
        return action * self.scale, entropy


class ModelValue(torch.nn.Module):
    def __init__(self, obs_dim: int = 3, act_dim: int = 1, width: int = 128):
        super().__init__()
        self.sequential = torch.nn.Sequential(
            torch.nn.Linear(obs_dim + act_dim, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, 1),
        )

    def forward(self, state, action):
        state = torch.cat([state, action], dim=1)
        return self.sequential(state)


class Tutorial:
    """The tutorial's five networks, its log-alpha, its four optimisers and its gradient step."""

    def __init__(self, obs_dim: int = 3, act_dim: int = 1, scale: float = 2.0):
        self.model_action = ModelAction(obs_dim, act_dim, scale)
        self.model_value1 = ModelValue(obs_dim, act_dim)
        self.model_value2 = ModelValue(obs_dim, act_dim)
        self.model_value_next1 = ModelValue(obs_dim, act_dim)
        self.model_value_next2 = ModelValue(obs_dim, act_dim)
        self.model_value_next1.load_state_dict(self.model_value1.state_dict())
        self.model_value_next2.load_state_dict(self.model_value2.state_dict())
        self.alpha = torch.tensor(math.log(0.01))
        self.alpha.requires_grad = True
        self.optimizer_action = torch.optim.Adam(self.model_action.parameters(), lr=3e-4)
        self.optimizer_value1 = torch.optim.Adam(self.model_value1.parameters(), lr=3e-3)
        self.optimizer_value2 = torch.optim.Adam(self.model_value2.parameters(), lr=3e-3)
        self.optimizer_alpha = torch.optim.Adam([self.alpha], lr=3e-4)
        self.loss_fn = torch.nn.MSELoss()

    def state(self) -> dict:
        return {
            "model_action": self.model_action.state_dict(),
            "model_value1": self.model_value1.state_dict(),
            "model_value2": self.model_value2.state_dict(),
            "model_value_next1": self.model_value_next1.state_dict(),
            "model_value_next2": self.model_value_next2.state_dict(),
            "alpha": self.alpha.detach(),
        }

    def load(self, state: dict) -> None:
        for name in ("model_action", "model_value1", "model_value2", "model_value_next1", "model_value_next2"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].reshape(()))

    def get_target(self, reward, next_state, over):
        action, entropy = self.model_action(next_state)
        target1 = self.model_value_next1(next_state, action)
        target2 = self.model_value_next2(next_state, action)
        target = torch.min(target1, target2)
        target += self.alpha.exp() * entropy
        target *= 0.99
        target *= 1 - over
        target += reward
        return target

    def get_loss_action(self, state):
        action, entropy = self.model_action(state)
        value1 = self.model_value1(state, action)
        value2 = self.model_value2(state, action)
        value = torch.min(value1, value2)
        loss_action = -self.alpha.exp() * entropy
        loss_action -= value
        return loss_action.mean(), entropy

    @staticmethod
    def soft_update(model, model_next):
        for param, param_next in zip(model.parameters(), model_next.parameters()):
            value = param_next.data * 0.995 + param.data * 0.005
            param_next.data.copy_(value)

    def step(self, state, action, reward, next_state, over) -> dict:
        """One iteration of the tutorial's inner loop, after get_sample(); returns its losses."""
        reward = (reward + 8) / 8

        target = self.get_target(reward, next_state, over).detach()

        loss_value1 = self.loss_fn(self.model_value1(state, action), target)
        self.optimizer_value1.zero_grad()
        loss_value1.backward()
        self.optimizer_value1.step()

        loss_value2 = self.loss_fn(self.model_value2(state, action), target)
        self.optimizer_value2.zero_grad()
        loss_value2.backward()
        self.optimizer_value2.step()

        loss_action, entropy = self.get_loss_action(state)
        self.optimizer_action.zero_grad()
        loss_action.backward()
        self.optimizer_action.step()

        loss_alpha = (entropy + 1).detach() * self.alpha.exp()
        loss_alpha = loss_alpha.mean()
        self.optimizer_alpha.zero_grad()
        loss_alpha.backward()
        self.optimizer_alpha.step()

        self.soft_update(self.model_value1, self.model_value_next1)
        self.soft_update(self.model_value2, self.model_value_next2)

        return {
            "critic1_loss": loss_value1.item(),
            "critic2_loss": loss_value2.item(),
            "actor_loss": loss_action.item(),
            "ent_coef_loss": loss_alpha.item(),
            "entropy": entropy.mean().item(),
        }
