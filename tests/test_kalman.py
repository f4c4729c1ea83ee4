import numpy as np

from aptrack.tracker.kalman import KalmanBoxMotion


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
