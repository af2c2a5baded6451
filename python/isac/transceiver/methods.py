"""The methods of the paper, registered in the method registry (registry.py):

  baseline    Sec. III: LS beams (6)-(7) of the nominal lambda/2 array at the transmitter; the
              receiver assumes the nominal array.
  perfect     "perfect knowledge" of Figs. 7-8: the receiver knows the true (impaired) array of
              the scenario; the transmitter is still the baseline of Sec. III-A.
  impairment  impairment learning (Sec. IV-A): transmitter AND receiver use the learned array
              (spacings, and the parameters of the element models the scenario turns on;
              parameter sharing).
  dictionary  dictionary learning (Sec. IV-A): transmitter and receiver use the learned
              K x N_theta dictionary; the LS synthesis runs on its own grid, as in training.
  nn          NNBL (Appendix A): the precoder MLP and the receiver CNNs of the weights file.

:class:`LearnedArrayMethod` is the base of every method that learns an array end to end with
differentiable OMP (the trainer's train.Trainer): a new one says how its array is deployed from
its weights (``array``), which tensors those hold (``validate_tensors``) and which learnable
array the trainer optimises (``learnable_array``, torch).
"""

from __future__ import annotations

import json

from ..model.array import DictionaryArray, PositionArray, scenario_nominal_array
from ..model.impairments import (
    POSITION_MODEL,
    ImpairedArray,
    element_model,
    element_models_registered,
    learned_models,
    true_array,
)
from ..weights import WeightsError, expect, expect_angle_grid, expect_only
from .registry import Method, register

#: isac-train options of the array-learning methods (argparse dest names)
ARRAY_TRAIN_FLAGS = (
    "iterations",
    "batch",
    "lr",
    "lr_final",
    "seed",
    "temperature",
    "temperature_final",
    "loss",
    "eta_phi",
    "sector_restricted",
    "curriculum_steps",
    "val_every",
    "val_frames",
    "checkpoint_every",
)


class Baseline(Method):
    name, summary = "baseline", "nominal lambda/2 array at the transmitter and the receiver (Sec. III)"

    def receive_array(self, scenario, weights):
        return scenario_nominal_array(scenario)


class Perfect(Method):
    name, summary = "perfect", "the receiver knows the true array; baseline transmitter (Figs. 7-8)"

    def receive_array(self, scenario, weights):
        return true_array(scenario)


class LearnedArrayMethod(Method):
    """A method that learns an array used at both ends (parameter sharing, Sec. IV-A), trained
    end to end with differentiable OMP on the trainer's harness (trainer.train)."""

    learned = True
    transmit_learned = True
    trainer = "gnuradio.isac.trainer.train"
    train_flags = ARRAY_TRAIN_FLAGS
    #: Adam's learning rate per training profile, in the units of the learnable array
    learning_rate: dict[str, float] = {"paper": 5e-3, "quick": 5e-3}

    def array(self, weights, scenario):
        """The learned array of ``weights`` (numpy model.array.ArrayModel)."""
        raise NotImplementedError  # pragma: no cover - interface

    def validate_tensors(self, weights, scenario) -> None:
        """The method's tensors beyond ``angle_grid_rad`` (WeightsError naming the first problem)."""

    def learnable_array(self, scenario, options):
        """The trainer's torch.nn.Module of the learnable array (nn.arrays.LearnableArray:
        ``grid_rad``, ``dictionary()``, ``atoms(angles)``, ``weight_tensors()``)."""
        raise NotImplementedError  # pragma: no cover - interface

    def receive_array(self, scenario, weights):
        return self.array(weights, scenario)

    def transmit_array(self, scenario, weights):
        return self.array(weights, scenario)

    def validate_weights(self, weights, scenario):
        expect_angle_grid(weights)
        self.validate_tensors(weights, scenario)

    def weights_metadata(self, scenario, tensors, metadata):
        """The units of the tensors (weights.UNITS, with each learned element model's)."""
        from ..weights import UNITS

        extra = {}
        for name in learned_models(scenario):
            if name != POSITION_MODEL:
                extra.update({k: u for k, u in element_model(name).units.items() if k in tensors})
        return {"units": json.dumps({**UNITS, **extra}, sort_keys=True)} if extra else {}

    def training_report(self, summary, scenario, options):
        first, last = summary["first"], summary["last"]
        lines = [
            f"trained {summary['steps']} steps in {summary['elapsed_s']:.1f} s: coherence {first['coherence']:.4f} -> "
            f"{last['coherence']:.4f}, validation loss {first['val_loss']:.2f} -> {last['val_loss']:.2f}"
        ]
        spacing = last.get("spacing_error_m")
        if spacing is not None and spacing == spacing:  # a structured array (not NaN)
            lines.append(
                f"spacing error ||d^ - d|| {first['spacing_error_m'] * 1e3:.3f} -> {spacing * 1e3:.3f} mm, "
                f"rms position error (offset removed) {first['position_rms_m'] * 1e3:.3f} -> "
                f"{last['position_rms_m'] * 1e3:.3f} mm"
            )
        if "element_error" in last:  # element models (array gain / phase errors, coupling, dead elements)
            lines.append(
                f"learned array models {', '.join(learned_models(scenario))}: element error of diag(g) C "
                f"(relative, common complex scale removed) {first['element_error']:.3f} -> {last['element_error']:.3f}"
            )
        return lines

    def tiny_options(self, steps):
        return dict(iterations=steps, batch=8, val_every=steps, val_frames=8, checkpoint_every=steps)

    def paper_options(self, batch, iterations):
        # the curriculum covers the same share of the run as the paper profile's (10,000 of 25,000)
        return dict(batch=batch, iterations=iterations, curriculum_steps=int(0.4 * iterations))


class Impairment(LearnedArrayMethod):
    name, summary = "impairment", "learned element spacings at the transmitter and the receiver (Sec. IV-A)"
    paper_receiver = "domp"
    train_flags = ARRAY_TRAIN_FLAGS + ("parameterisation",)
    learning_rate = {"paper": 1e-3, "quick": 2e-3}

    def array(self, weights, scenario):
        """The learned positions (a PositionArray), composed with the learned element models
        (model.impairments.ImpairedArray: a = diag(g) C a_pos) when the file holds any."""
        t = weights.tensors
        lam = scenario.wavelength_m if scenario is not None else weights.wavelength_m
        base = PositionArray(t["positions_m"], lam, t["spacings_m"], kind=f"learned-{weights.metadata['impairment']}")
        params = {}
        for name in weights.array_models:
            if name != POSITION_MODEL:
                keys = element_model(name).weight_shapes(base.antennas, tensors=t)
                params[name] = {k: t[k] for k in keys}
        return ImpairedArray(base, params) if params else base

    def validate_tensors(self, weights, scenario):
        """spacings_m and positions_m (K,) [m], and exactly the tensors of the element models the
        file lists (each model's weight_shapes, for the scenario when given)."""
        K, name, listed = weights.antennas, weights.source, weights.array_models
        expect(weights, "spacings_m", (K,))
        expect(weights, "positions_m", (K,))
        allowed = {"angle_grid_rad", "spacings_m", "positions_m"}
        owner = {}  # tensor -> the registered element model it belongs to
        for model in element_models_registered():
            owner.update({key: model for key in element_model(model).weight_shapes(K, tensors=weights.tensors)})
        for model in (m for m in listed if m != POSITION_MODEL):
            m = element_model(model)
            own = m.weight_shapes(K, None, weights.tensors)  # the file's own, consistent shapes
            for key, shape in own.items():
                expect(weights, key, shape)
            problem = m.check_tensors(weights.tensors, K)
            if problem:
                raise WeightsError(f"{name}: {problem}")
            if scenario is not None:
                for key, shape in m.weight_shapes(K, scenario, weights.tensors).items():
                    if shape != own[key]:
                        raise WeightsError(
                            f"{name}: tensor '{key}' of array model {model!r} has shape {own[key]}, the scenario's "
                            f"array needs {shape} ({', '.join(m.uses)})"
                        )
            allowed |= set(own)
        for key in sorted(set(weights.tensors) - allowed):
            if key in owner:
                raise WeightsError(
                    f"{name}: tensor '{key}' of array model {owner[key]!r}, which the file's array_models "
                    f"{list(listed)} do not list"
                )
            raise WeightsError(f"{name}: unexpected tensor '{key}' for method {self.name!r}")

    def learnable_array(self, scenario, options):
        from ..model.impairments import learned_models
        from ..nn import arrays as tm

        models = learned_models(scenario)
        if models == (POSITION_MODEL,):  # the paper's impairment learning (Sec. IV-A)
            return tm.SpacingArray(
                scenario.array["antennas"],
                scenario.wavelength_m,
                scenario.transmitter["beam_grid"],
                scenario.array["impairment"],
                options.parameterisation,
            )
        return tm.ImpairmentArray(scenario, models, scenario.transmitter["beam_grid"], options.parameterisation)

    def parameter_count(self, weights, scenario):
        return {"real": int(weights.tensors["spacings_m"].size)}


class Dictionary(LearnedArrayMethod):
    name, summary = "dictionary", "learned K x N_theta dictionary at the transmitter and the receiver (Sec. IV-A)"
    receivers = ("omp",)  # dOMP recomputes off-grid atoms from element positions
    train_flags = ARRAY_TRAIN_FLAGS + ("dictionary_points",)
    limited_options = {"dictionary_points": 156}  # complexity-limited (Sec. V-C): 64 x 156 complex

    def array(self, weights, scenario):
        return DictionaryArray(weights.angle_grid_rad, weights.tensors["dictionary"])

    def validate_tensors(self, weights, scenario):
        n = json.loads(weights.metadata["angle_grid"])["points"]
        expect(weights, "dictionary", (weights.antennas, int(n)), "complex")
        expect_only(weights, ("angle_grid_rad", "dictionary"))

    def learnable_array(self, scenario, options):
        from ..nn import arrays as tm

        points = options.dictionary_points or scenario.transmitter["beam_grid"]
        return tm.DictionaryArray(scenario.array["antennas"], scenario.wavelength_m, points)

    def parameter_count(self, weights, scenario):
        return {"complex": int(weights.tensors["dictionary"].size)}

    def training_report(self, summary, scenario, options):
        K, n = scenario.array["antennas"], summary["parameters"]
        return super().training_report(summary, scenario, options) + [
            f"learned {n} complex dictionary entries ({K} x {n // K} grid angles)"
        ]


class Nn(Method):
    name, summary = "nn", "NNBL: precoder MLP and receiver CNNs (Appendix A)"
    learned = True
    has_array = False
    receivers = ("nn",)
    transmit_learned = True
    trainer = "gnuradio.isac.trainer.nnbl_train"
    train_flags = (
        "iterations",
        "batch",
        "lr",
        "seed",
        "eta_phi",
        "val_every",
        "val_frames",
        "checkpoint_every",
        "patience",
        "plateau_window",
        "limited",
        "map_points",
    )
    data_parallel = False
    limited_options = {"limited": True}
    step_unit = "steps per training step"

    def transmitter(self, scenario, weights):
        from .nn import NnTransmitter, networks

        return NnTransmitter(networks(scenario, weights))

    def sensing_receiver(self, scenario, weights, receiver, kernel, temperature):
        from .nn import NnSensingReceiver, networks

        return NnSensingReceiver(scenario, networks(scenario, weights))

    @staticmethod
    def _config(metadata) -> dict:
        config = (metadata or {}).get("nnbl")
        if not config:
            raise WeightsError("weights: method 'nn' needs the NNBL configuration (metadata nnbl=)")
        return dict(config)

    def angle_points(self, tensors, metadata):
        return int(self._config(metadata)["n_theta"])

    def weights_metadata(self, scenario, tensors, metadata):
        return {"nnbl": json.dumps(self._config(metadata), sort_keys=True)}

    def validate_weights(self, weights, scenario):
        """The NNBL configuration in the metadata fits the scenario and fixes the shape of every
        network tensor (all present, none extra, real, finite)."""
        from ..nn.schema import expected_shapes
        from .nn import nnbl_config

        name = weights.source
        try:
            cfg = json.loads(weights.metadata["nnbl"])
            keys = {"antennas", "max_targets", "n_theta", "n_tau", "limited"}
            if set(cfg) != keys:
                raise ValueError(f"keys {sorted(cfg)}, expected {sorted(keys)}")
            config = nnbl_config(weights).check()
        except (KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{name}: malformed NNBL metadata 'nnbl' ({exc})") from None
        if config.antennas != weights.antennas:
            raise WeightsError(
                f"{name}: NNBL configured for {config.antennas} antennas, metadata says {weights.antennas}"
            )
        if scenario is not None and config.max_targets != scenario.scene["max_targets"]:
            raise WeightsError(
                f"{name}: NNBL outputs T_max = {config.max_targets} targets, the scenario has "
                f"{scenario.scene['max_targets']}"
            )
        shapes = expected_shapes(config)
        extra = sorted(set(weights.tensors) - set(shapes))
        if extra:
            raise WeightsError(f"{name}: unexpected tensor '{extra[0]}' for NNBL {config}")
        for key, shape in shapes.items():
            expect(weights, key, shape)

    def parameter_count(self, weights, scenario):
        from ..nn.networks import Nnbl, parameter_counts
        from .nn import nnbl_config

        return {"real": int(parameter_counts(Nnbl.for_scenario(scenario, nnbl_config(weights)))["total"])}

    def training_report(self, summary, scenario, options):
        first, mid, last = summary["first"], summary["after_position"], summary["last"]
        return [
            f"NNBL ({'limited' if options.limited else 'full'}, {summary['parameters']['total']} parameters): "
            f"{summary['steps']} steps in {summary['elapsed_s']:.1f} s; validation GOSPA (18) "
            f"{first['val_position']:.2f} -> {mid['val_position']:.2f} m (step 1), BCE-GOSPA (19) "
            f"{mid['val_detection']:.3f} -> {last['val_detection']:.3f} (step 2)"
        ]

    def tiny_options(self, steps):
        return dict(iterations=steps // 4, batch=4, val_every=steps, val_frames=8, checkpoint_every=steps)


for _m in (Baseline(), Perfect(), Impairment(), Dictionary(), Nn()):
    register(_m)


__all__ = ["ARRAY_TRAIN_FLAGS", "Baseline", "Dictionary", "Impairment", "LearnedArrayMethod", "Nn", "Perfect"]
