#!/usr/bin/env python3
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of the compiled angle-delay map kernel against numpy (run by ctest)."""

import numpy as np
from gnuradio import gr_unittest, isac


def crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def reference_map(Y, Phi_a, Phi_d):
    """The paper's formula in complex128, product order as written."""
    return Phi_a.conj().T @ Y @ Phi_d.conj()


class qa_angle_delay_map(gr_unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(1234)

    def problem(self, K=16, S=32, Na=24, Nd=10, batch=None):
        shape = (K, S) if batch is None else (batch, K, S)
        return (crandn(self.rng, *shape), crandn(self.rng, K, Na), crandn(self.rng, S, Nd))

    def assert_close(self, got, ref):
        # single precision: errors relative to the largest entry of the map
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())

    def test_power_matches_numpy(self):
        Y, Pa, Pd = self.problem()
        L = isac.angle_delay_map(Y, Pa, Pd)
        self.assertEqual(L.dtype, np.float32)
        self.assertEqual(L.shape, (24, 10))
        self.assert_close(L, np.abs(Pa.conj().T @ Y @ Pd.conj()) ** 2)

    def test_complex_matches_numpy(self):
        Y, Pa, Pd = self.problem(K=7, S=13, Na=11, Nd=5)
        M = isac.angle_delay_map_complex(Y, Pa, Pd)
        self.assertEqual(M.dtype, np.complex64)
        self.assert_close(M, reference_map(Y, Pa, Pd))

    def test_paper_size(self):
        Y, Pa, Pd = self.problem(K=64, S=256, Na=720, Nd=200)
        self.assert_close(isac.angle_delay_map(Y, Pa, Pd), np.abs(reference_map(Y, Pa, Pd)) ** 2)

    def test_batch(self):
        Y, Pa, Pd = self.problem(batch=3)
        L = isac.angle_delay_map(Y, Pa, Pd)
        M = isac.angle_delay_map_complex(Y, Pa, Pd)
        self.assertEqual(L.shape, (3, 24, 10))
        self.assertEqual(M.shape, (3, 24, 10))
        for b in range(3):
            self.assert_close(M[b], reference_map(Y[b], Pa, Pd))
            self.assert_close(L[b], np.abs(reference_map(Y[b], Pa, Pd)) ** 2)
        self.assertEqual(isac.angle_delay_map(Y[:0], Pa, Pd).shape, (0, 24, 10))

    def test_converts_dtype_and_layout(self):
        Y, Pa, Pd = self.problem()
        ref = isac.angle_delay_map_complex(Y.astype(np.complex64), Pa.astype(np.complex64), Pd.astype(np.complex64))
        # complex128, Fortran order and a strided view must give the same map
        got = isac.angle_delay_map_complex(np.asfortranarray(Y), Pa, np.asfortranarray(Pd))
        np.testing.assert_array_equal(got, ref)
        wide = np.zeros((16, 64), complex)
        wide[:, ::2] = Y
        np.testing.assert_array_equal(isac.angle_delay_map_complex(wide[:, ::2], Pa, Pd), ref)

    def test_argmax(self):
        L = self.rng.random((30, 40)).astype(np.float32)
        i, j, v = isac.map_argmax(L)
        self.assertEqual((i, j), np.unravel_index(np.argmax(L), L.shape))
        self.assertEqual(v, L.max())
        L[5, 7] = L[20, 3] = 2.0  # ties: the first in row-major order wins
        self.assertEqual(isac.map_argmax(L)[:2], (5, 7))
        L[9, 9] = np.nan  # like numpy.argmax, NaN wins
        i, j, v = isac.map_argmax(L)
        self.assertEqual((i, j), (9, 9))
        self.assertTrue(np.isnan(v))

    def test_argmax_of_map(self):
        Y, Pa, Pd = self.problem()
        L = isac.angle_delay_map(Y, Pa, Pd)
        i, j, v = isac.map_argmax(L)
        self.assertEqual((i, j), np.unravel_index(np.argmax(L), L.shape))
        self.assertEqual(v, L[i, j])

    def test_shape_errors(self):
        Y, Pa, Pd = self.problem(K=64, S=256, Na=8, Nd=4)
        cases = [
            ((Y, Pa[:63], Pd), "angle_delay_map: Phi_a has 63 rows but Y has 64 (K must match)"),
            ((Y, Pa, Pd[:255]), "angle_delay_map: Phi_d has 255 rows but Y has 256 columns (S must match)"),
            ((Y[0], Pa, Pd), "angle_delay_map: Y must have shape (K, S) or (B, K, S), got 1"),
            ((Y, Pa[0], Pd), "angle_delay_map: Phi_a must have shape (K, Na), got 1"),
            ((Y, Pa, Pd[None]), "angle_delay_map: Phi_d must have shape (S, Nd), got 3"),
        ]
        for args, message in cases:
            with self.assertRaises(ValueError) as ctx:
                isac.angle_delay_map(*args)
            self.assertIn(message, str(ctx.exception))
        with self.assertRaisesRegex(ValueError, r"^angle_delay_map_complex: Phi_a has 63 rows"):
            isac.angle_delay_map_complex(Y, Pa[:63], Pd)
        with self.assertRaisesRegex(ValueError, r"^map_argmax: L must have shape"):
            isac.map_argmax(np.zeros(5, np.float32))
        with self.assertRaisesRegex(ValueError, r"^map_argmax: L is empty"):
            isac.map_argmax(np.zeros((0, 5), np.float32))


if __name__ == "__main__":
    gr_unittest.run(qa_angle_delay_map)
