"""Reward models learned from comparisons: losses (`losses`), clip and text models and ensembles (`models`),
training data (`data`), training (`training`) and save/load (`persistence`); settings in `config`.

The model of a labeler (Bradley-Terry; Christiano et al. 2017, arXiv 1706.03741, section 2.2.3)
--------------------------------------------------------------------------------------------------
A reward model r scores each item; for a clip, r(clip) is the *sum of per-step rewards* over its frames
(Christiano et al., eq. 1), for a text response r(prompt, response) is one scalar. The probability that a
labeler prefers A is P(A > B) = sigma(r(A) - r(B)), and the loss of one label with soft target mu
(mu = 1 A preferred, 0 B preferred, 0.5 "equal") is

    loss = -[mu log P + (1 - mu) log(1 - P)].

Settings (all fields of :class:`RewardConfig`):

* ``noise_floor`` (default on, as Christiano et al. section 2.2.3): the labeler answers at random 10% of the
  time, so P_e = 0.9 P + 0.05 replaces P in the loss *and* in every probability this module reports
  (held-out P(A > B) for calibration, accuracy, disagreement), because P_e is the model's prediction of the
  label. Off: plain Bradley-Terry (Gao et al. 2022; InstructGPT).
* ``equal``: "soft" (a 0.5/0.5 label, Christiano et al.; WebGPT's neutral answers) or "drop" (InstructGPT
  drops ties). "can't tell" and "skip" are always excluded (Christiano's "incomparable" is dropped).
* Rankings (InstructGPT, Ouyang et al. 2022, arXiv 2203.02155, section 3.5): a ranking of K responses gives
  all C(K, 2) pairs, and they form *one batch element*: the loss of a ranking is the mean of its pairs'
  losses (the 1/C(K, 2) factor) and minibatches are drawn over rankings, not pairs ("shuffling pairs
  individually overfit within one epoch"). ``group_rankings=False`` turns this off for the ablation (every
  pair its own element). A plain pair is an element of its own.
* The ensemble (Christiano et al. section 2.2.3): ``members`` predictors, each trained on a bootstrap
  resample of the training elements (``bootstrap``); a held-out split (``heldout_fraction``, default 1/e as
  theirs) of whole *items* (all labels of one item, e.g. several labelers' answers on one pair, fall on the
  same side, so held-out accuracy is never measured on a pair seen in training); an L2 penalty
  (``l2``: (l2 / 2) * sum of squared weights of the kernels and matrices, biases excluded; coupled L2 as
  Adam's ``weight_decay``); optionally ``l2_adapt``, their rule of adjusting L2 so the held-out loss stays
  between 1.1x and 1.5x the training loss (our step: x/÷ ``l2_adapt_factor`` per epoch).
* Normalization (Christiano et al. section 2.2.3 and appendix A.1): after training each member's output is
  shifted and scaled to zero mean and standard deviation ``reward_std`` (default 0.05, their Atari value)
  over the steps of the training clips (text: the training responses); the ensemble reward is the mean of
  the normalized members (not renormalized). This is the reward RL sees (:meth:`RewardEnsemble.step_rewards`).
  Preference probabilities use each member's *trained* scale (the scale the loss calibrated), and the
  ensemble's P(A > B) is the mean of the members' probabilities; disagreement is their standard deviation
  (population std, so 0 for one member), Christiano's query-selection signal.

Models
------
* :class:`ClipRewardModel`: a per-step reward network on the uint8 64x64 observations: the IMPALA stacks of
  :mod:`workbench.rl.policy` (``ConvSequence``) with depths [16, 32, 32] x ``width``, then dense ``hidden`` ->
  scalar. Departure: Christiano et al.'s Atari predictor was a 4-layer conv net with dropout and batch norm;
  here it is the IMPALA CNN the policies use (no dropout, no batch norm).
* :class:`TextRewardModel`: a head (linear, or one hidden layer) over a pluggable :class:`TextEncoder`. Built
  in: :class:`HashedBagOfWords` (sign-hashed unigrams and bigrams, no external data). A sentence-embedding
  encoder can be registered with :func:`register_text_encoder` where one is installed locally; none is
  installed in this project, so none is built in.

Training from a labeling campaign: :func:`train_reward_model` (and ``workbench reward train``). Saving:
:func:`save_reward_model` / :func:`load_reward_model` write a directory with ``weights.safetensors`` and
``config.json``; loading executes no code (safetensors holds tensors only, the JSON is validated key by key,
and the weights' SHA-256 recorded in the config must match).

Bad input raises ``ValueError`` saying what was found and what is needed.
"""

from workbench.preferences.reward.config import RewardConfig
from workbench.preferences.reward.data import (
    ClipBank,
    PreferenceData,
    comparisons_to_data,
    labeler_agreement,
    split_heldout,
)
from workbench.preferences.reward.losses import (
    bradley_terry_loss,
    grouped_mean,
    pair_losses,
    preference_probability,
)
from workbench.preferences.reward.models import (
    TEXT_ENCODERS,
    ClipRewardModel,
    HashedBagOfWords,
    RewardEnsemble,
    TextEncoder,
    TextRewardModel,
    build_ensemble,
    make_text_encoder,
    register_text_encoder,
)
from workbench.preferences.reward.persistence import (
    load_reward_model,
    load_reward_run,
    reward_model_dir,
    save_reward_model,
)
from workbench.preferences.reward.training import (
    RewardTrainingResult,
    fit_ensemble,
    train_reward_model,
)

__all__ = [
    "RewardConfig", "bradley_terry_loss", "pair_losses", "grouped_mean", "preference_probability",
    "ClipRewardModel", "TextRewardModel", "TextEncoder", "HashedBagOfWords", "register_text_encoder",
    "TEXT_ENCODERS", "RewardEnsemble", "PreferenceData", "ClipBank", "comparisons_to_data", "fit_ensemble",
    "train_reward_model", "RewardTrainingResult", "save_reward_model", "load_reward_model",
    "reward_model_dir", "labeler_agreement", "load_reward_run", "build_ensemble", "make_text_encoder",
    "split_heldout",
]
