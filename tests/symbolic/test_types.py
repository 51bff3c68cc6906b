"""TensorType: identity, broadcastable vs static shape, filter casting rules, the T constructors,
and floatX from THEON_FLAGS."""

import numpy as np
import pytest
import theon
import theon.tensor as T
from theon.symbolic.types import TensorType

# -- identity ---------------------------------------------------------------------------------

def test_equality_and_hash():
    a = TensorType('float32', (False, True))
    b = TensorType('float32', shape=(None, 1))
    assert a == b and hash(a) == hash(b)
    assert a != TensorType('float64', (False, True))
    assert a != TensorType('float32', (False, False))
    assert a != TensorType('float32', (False,))
    assert TensorType('float32', shape=(3, None)) != TensorType('float32', shape=(None, None))
    assert len({a, b, TensorType('float64', (False, True))}) == 2
    assert a != 'float32'
    assert TensorType('float32', (False,)) == T.fvector().type


def test_repr():
    assert repr(TensorType('float64', (False, False))) == 'TensorType(float64, matrix)'
    assert repr(TensorType('int32', ())) == 'TensorType(int32, scalar)'
    assert repr(TensorType('float32', (False,))) == 'TensorType(float32, vector)'
    assert repr(TensorType('float32', (True, False))) == 'TensorType(float32, matrix, shape=(1, ?))'
    assert repr(TensorType('float32', shape=(3,))) == 'TensorType(float32, vector, shape=(3,))'
    assert 'tensor3' in repr(TensorType('float64', (False,) * 3))
    assert str(TensorType('uint8', (False,) * 5)).startswith('TensorType(uint8, 5d')


def test_broadcastable_vs_shape():
    t = TensorType('float64', shape=(1, None, 5))
    assert t.broadcastable == (True, False, False)
    assert t.shape == (1, None, 5) and t.ndim == 3
    u = TensorType('float64', (True, False))
    assert u.shape == (1, None)
    with pytest.raises(TypeError):
        TensorType('float64')
    with pytest.raises(ValueError):
        TensorType('float64', shape=(-1,))
    with pytest.raises(TypeError):
        TensorType('float64', broadcastable=(True,), shape=(None, None))


def test_dtype_spellings():
    assert TensorType(np.float32, (False,)).dtype == 'float32'
    assert TensorType(np.dtype('int16'), ()).dtype == 'int16'
    assert TensorType('floatX', ()).dtype == theon.config.floatX
    with pytest.raises(TypeError):
        TensorType('float128' if hasattr(np, 'float128') else 'datetime64', ())


def test_is_super():
    general = TensorType('float64', shape=(None, None))
    specific = TensorType('float64', shape=(1, 3))
    assert general.is_super(specific) and not specific.is_super(general)
    assert not general.is_super(TensorType('float32', shape=(None, None)))
    assert not general.is_super(TensorType('float64', shape=(None,)))


# -- filter -----------------------------------------------------------------------------------

def test_filter_exact_dtype_is_not_copied():
    t = TensorType('float64', (False,))
    a = np.arange(3.0)
    assert t.filter(a) is a


def test_filter_safe_casts_allowed():
    t = TensorType('float32', (False,))
    for src in ('int8', 'int16', 'uint8', 'float16', 'bool'):
        r = t.filter(np.ones(2, dtype=src))
        assert r.dtype == np.float32
    d = TensorType('float64', (False,))
    for src in ('int32', 'float32', 'uint32'):
        assert d.filter(np.ones(2, dtype=src)).dtype == np.float64
    i = TensorType('int64', ())
    assert i.filter(np.int8(3)).dtype == np.int64


def test_filter_lossy_casts_refused_unless_allow_downcast():
    t = TensorType('float32', (False,))
    for src in ('float64', 'int64', 'int32'):
        with pytest.raises(TypeError, match='allow_input_downcast'):
            t.filter(np.ones(2, dtype=src))
        assert t.filter(np.ones(2, dtype=src), allow_downcast=True).dtype == np.float32
    i = TensorType('int32', (False,))
    with pytest.raises(TypeError):
        i.filter(np.ones(2, dtype='float32'))
    with pytest.raises(TypeError):
        i.filter(np.ones(2, dtype='int64'))
    np.testing.assert_array_equal(i.filter(np.array([1.7, -2.2]), allow_downcast=True), [1, -2])


def test_filter_python_values():
    f = TensorType('float32', (False,))
    with pytest.raises(TypeError, match="cannot store accurately"):
        f.filter([0.1, 0.2])  # a list's values must survive the cast (Theano's rule)
    r = f.filter([0.1, 0.2], allow_downcast=True)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, np.array([0.1, 0.2], dtype=np.float32))
    np.testing.assert_array_equal(f.filter([0.5, float('nan')]), [0.5, np.nan])
    assert f.filter([1, 2]).dtype == np.float32
    with pytest.raises(TypeError):
        f.filter([1e100])  # would overflow to inf
    with pytest.raises(TypeError):
        f.filter([0.1], allow_downcast=False)  # False: only safe casts
    s = TensorType('float32', ())
    assert s.filter(1.5).dtype == np.float32 and float(s.filter(1.5)) == 1.5
    assert float(s.filter(3)) == 3.0
    assert np.isinf(s.filter(float('inf')))
    with pytest.raises(TypeError):
        s.filter(1e100)
    assert np.isinf(s.filter(1e100, allow_downcast=True))
    with pytest.raises(TypeError):
        s.filter(np.float64(1.5))  # a numpy float64 is not a Python float
    i8 = TensorType('int8', ())
    assert i8.filter(3).dtype == np.int8
    assert i8.filter(2.0) == 2  # the value survives the cast
    with pytest.raises(TypeError):
        i8.filter(300)
    with pytest.raises(TypeError):
        i8.filter(1.5)
    iv = TensorType('int32', (False,))
    np.testing.assert_array_equal(iv.filter([1, 2]), [1, 2])
    with pytest.raises(TypeError):
        iv.filter([2 ** 40])
    with pytest.raises(TypeError):
        iv.filter([1.5])


def test_filter_strict():
    t = TensorType('float64', (False,))
    with pytest.raises(TypeError, match='strict'):
        t.filter([1.0, 2.0], strict=True)
    with pytest.raises(TypeError, match='strict'):
        t.filter(np.ones(2, 'float32'), strict=True)
    assert t.filter(np.ones(2), strict=True).dtype == np.float64


def test_filter_ndim_and_static_shape():
    t = TensorType('float64', shape=(None, 3))
    with pytest.raises(TypeError, match='2-d'):
        t.filter(np.ones(3))
    with pytest.raises(ValueError, match='static shape'):
        t.filter(np.ones((2, 4)))
    assert t.filter(np.ones((5, 3))).shape == (5, 3)
    with pytest.raises(TypeError, match='numeric'):
        t.filter([['a', 'b', 'c']])


def test_filter_error_names_the_variable():
    x = T.fvector('my_input')
    with pytest.raises(TypeError, match='my_input'):
        x.type.filter(np.ones(2), var=x)


# -- constructors -----------------------------------------------------------------------------

PREFIXES = {'b': 'int8', 'w': 'int16', 'i': 'int32', 'l': 'int64', 'f': 'float32',
            'd': 'float64', 'c': 'complex64', 'z': 'complex128'}
KINDS = {'scalar': (), 'vector': (False,), 'matrix': (False, False), 'row': (True, False),
         'col': (False, True), 'tensor3': (False,) * 3, 'tensor4': (False,) * 4}
PLURALS = {'scalar': 'scalars', 'vector': 'vectors', 'matrix': 'matrices', 'row': 'rows',
           'col': 'cols', 'tensor3': 'tensor3s', 'tensor4': 'tensor4s'}


@pytest.mark.parametrize('kind', list(KINDS))
def test_constructors(kind):
    v = getattr(T, kind)('v')
    assert v.dtype == theon.config.floatX and v.broadcastable == KINDS[kind] and v.name == 'v'
    assert getattr(T, kind)().name is None
    assert getattr(T, kind)(dtype='int32').dtype == 'int32'
    for p, dt in PREFIXES.items():
        w = getattr(T, p + kind)('w')
        assert w.dtype == dt, (p, kind)
        assert w.broadcastable == KINDS[kind]
        assert w.ndim == len(KINDS[kind])
        assert w.type == TensorType(dt, KINDS[kind])
        many = getattr(T, p + PLURALS[kind])('a', 'b')
        assert [m.name for m in many] == ['a', 'b']
        assert all(m.dtype == dt and m.broadcastable == KINDS[kind] for m in many)


def test_plurals():
    a, b = T.fmatrices('a', 'b')
    assert (a.name, b.name) == ('a', 'b') and a.dtype == b.dtype == 'float32'
    assert a is not b
    vs = T.ivectors(3)
    assert len(vs) == 3 and all(v.dtype == 'int32' and v.ndim == 1 for v in vs)
    assert len({id(v) for v in vs}) == 3
    x, y, z = T.matrices('x', 'y', 'z')
    assert [v.name for v in (x, y, z)] == ['x', 'y', 'z']
    assert [v.name for v in T.dscalars('p q')] == ['p', 'q']


def test_tensor_constructor():
    t = T.tensor('float32', (False, True))
    assert t.dtype == 'float32' and t.broadcastable == (False, True)
    t2 = T.tensor('int64', (False,) * 5, name='t5')
    assert t2.ndim == 5 and t2.name == 't5'
    t3 = T.tensor(dtype='float64', shape=(None, 3))
    assert t3.type.shape == (None, 3)
    with pytest.raises(TypeError):
        T.tensor('float32')


def test_variable_attributes():
    x = T.frow('x')
    assert x.ndim == 2 and x.dtype == 'float32' and x.broadcastable == (True, False)
    assert x.type.shape == (1, None)


# -- floatX -----------------------------------------------------------------------------------

def test_floatX_from_THEON_FLAGS_in_subprocess(run_python):
    code = ("import theon, theon.tensor as T; "
            "print(theon.config.floatX, T.matrix().dtype, T.scalar().dtype, T.dmatrix().dtype)")
    out = run_python(code, 'floatX=float32')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['float32', 'float32', 'float32', 'float64']
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['float64', 'float64', 'float64', 'float64']


def test_bad_THEON_FLAGS_are_reported(run_python):
    out = run_python("import theon", 'floatX=float99')
    assert out.returncode != 0 and 'floatX' in out.stderr and 'float99' in out.stderr
    # an unknown flag is warned about, not fatal (Theano accepted many flags theon ignores)
    out = run_python("import theon", 'nonsense_setting=1')
    assert out.returncode == 0 and 'nonsense_setting' in out.stderr, out.stderr


def test_config_assignment_is_validated():
    with pytest.raises(ValueError, match='floatX'):
        theon.config.floatX = 'float128'
    with pytest.raises(AttributeError):
        theon.config.no_such_setting = 1
    old = theon.config.floatX
    try:
        theon.config.floatX = 'float32'
        assert T.vector().dtype == 'float32'
        assert TensorType('floatX', ()).dtype == 'float32'
    finally:
        theon.config.floatX = old
    assert T.vector().dtype == old


def test_numpy_scalars_keep_their_dtype_python_scalars_autocast():
    # Theano's autocast applies to Python numbers only; np.float64 subclasses float but is
    # already typed
    assert T.constant(np.float64(0.5)).dtype == "float64"
    assert T.constant(0.5).dtype == "float32"
    assert T.constant(np.float32(0.1)).dtype == "float32"
    assert T.constant(0.1).dtype == "float64"
    assert (T.fvector() * np.float32(0.1)).dtype == "float32"
    assert T.constant(np.complex128(1j)).dtype == "complex128"
