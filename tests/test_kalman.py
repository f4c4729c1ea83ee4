import numpy as np

from aptrack.track.kalman import KalmanBoxMotion


def test_constant_velocity_is_learned_and_predicted():
    kf = KalmanBoxMotion()
    mean, cov = kf.initiate([100, 50, 0.5, 40])
    for t in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, [100 + 3 * t, 50 - t, 0.5, 40])
    np.testing.assert_allclose(mean[4:6], [3, -1], atol=0.05)
    pred, _ = kf.predict(mean, cov)
    np.testing.assert_allclose(pred[:2], [100 + 3 * 30, 50 - 30], atol=0.3)


def test_predict_grows_uncertainty_and_does_not_mutate_inputs():
    kf = KalmanBoxMotion()
    mean, cov = kf.initiate([0, 0, 1, 10])
    mean_copy, cov_copy = mean.copy(), cov.copy()
    _, cov2 = kf.predict(mean, cov)
    assert np.all(np.diag(cov2) >= np.diag(cov))
    np.testing.assert_array_equal(mean, mean_copy)
    np.testing.assert_array_equal(cov, cov_copy)
    m3, _ = kf.update(mean, cov, [5, 0, 1, 10])
    assert 0 < m3[0] < 5
    np.testing.assert_array_equal(mean, mean_copy)


def test_stacked_predict_and_update_equal_filterpy_per_track():
    kf = KalmanBoxMotion()
    rng = np.random.default_rng(0)
    states = []
    for _ in range(4):
        mean, cov = kf.initiate([rng.uniform(0, 500), rng.uniform(0, 500), rng.uniform(0.5, 2), rng.uniform(10, 200)])
        mean[4:] = rng.normal(size=4)
        states.append((mean, cov))
    for _ in range(5):
        means, covs = np.array([m for m, _ in states]), np.array([c for _, c in states])
        means_in, covs_in = means.copy(), covs.copy()
        one = [kf.predict(m, c) for m, c in states]
        many = kf.multi_predict(means, covs)
        np.testing.assert_allclose(many[0], [m for m, _ in one], rtol=1e-12)
        np.testing.assert_allclose(many[1], [c for _, c in one], rtol=1e-12, atol=1e-12)
        z = many[0][:, :4] + rng.normal(scale=3.0, size=(4, 4))
        one = [kf.update(m, c, zz) for (m, c), zz in zip(one, z)]
        many = kf.multi_update(many[0], many[1], z)
        np.testing.assert_allclose(many[0], [m for m, _ in one], rtol=1e-12)
        np.testing.assert_allclose(many[1], [c for _, c in one], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(means, means_in)   # inputs untouched
        np.testing.assert_array_equal(covs, covs_in)
        states = one
