"""A skip of a required area fails under CI=true."""

import pytest

from tests.fixtures import required


@pytest.mark.parametrize('ci', ['true', 'True', '1'])
def test_required_area_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv('CI', ci)
    with pytest.raises(pytest.fail.Exception) as failed:
        required.require('keystone', 'no venv')
    assert 'keystone: no venv' in str(failed.value)
    assert required.AREAS['keystone'] in str(failed.value)


@pytest.mark.parametrize('ci', [None, '', 'false'])
def test_required_area_skips_elsewhere(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv('CI', raising=False)
    else:
        monkeypatch.setenv('CI', ci)
    with pytest.raises(pytest.skip.Exception, match='keystone: no venv'):
        required.require('keystone', 'no venv')


def test_unknown_area_is_a_mistake(monkeypatch):
    monkeypatch.delenv('CI', raising=False)
    with pytest.raises(KeyError):
        required.require('no-such-area', 'why')
