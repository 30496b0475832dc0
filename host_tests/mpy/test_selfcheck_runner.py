import unittest


class RunnerSmoke(unittest.TestCase):
    def test_runs(self):
        self.assertEqual(1 + 1, 2)
