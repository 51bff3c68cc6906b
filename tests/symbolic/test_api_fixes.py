"""Regression tests for confirmed defects: float constants overflowing floatX, ndarray subclasses
as inputs, as_op output checking, unknown Theano flags, clone with values and strict types,
the build-time index error class, and the README's error example."""
import os
import pathlib
import warnings

import numpy as np
import pytest
import theon
import theon as theano
import theon.tensor as T
from theon.compile.ops import as_op
from theon.ops.base import autocast_dtype
from theon.ops.subtensor import IndexingError

THIS_FILE = os.path.basename(__file__)
README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def floatx():
    """Set floatX for one test and restore it."""
    old = theon.config.floatX

    def set_(value):
        theon.config.floatX = value
    yield set_
    theon.config.floatX = old


# -- 1. float constants do not overflow floatX -------------------------------------------------

def test_floatx_float32_constant_too_big_for_float32_becomes_float64(floatx):
    floatx('float32')
    assert autocast_dtype(1e40) == 'float64'
    assert autocast_dtype(-1e40) == 'float64'
    assert autocast_dtype(3e38) == 'float32'          # fits: Theano's floatX-sized constant
    assert autocast_dtype(0.1) == 'float32'           # rounded, as Theano did
    assert autocast_dtype(float('inf')) == 'float32'  # already infinite: nothing to lose
    x = T.dvector()
    out = theano.function([x], x * 1e40)(np.ones(2))
    np.testing.assert_allclose(out, [1e40, 1e40])
    assert (T.fvector() * 0.1).dtype == 'float32'


def test_floatx_float16_constant_too_big_for_float16_widens(floatx):
    floatx('float16')
    assert autocast_dtype(0.5) == 'float16'
    assert autocast_dtype(65504.0) == 'float16'  # float16's largest finite value
    assert autocast_dtype(70000.0) == 'float32'
    assert autocast_dtype(1e40) == 'float64'
    x = T.dvector()
    out = theano.function([x], x + 70000.0)(np.ones(2))
    np.testing.assert_allclose(out, [70001.0, 70001.0])


def test_floatx_float64_autocast_unchanged_and_quiet(floatx):
    floatx('float64')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no numpy overflow warning while deciding
        assert autocast_dtype(0.5) == 'float32'
        assert autocast_dtype(0.1) == 'float64'
        assert autocast_dtype(1e40) == 'float64'
        assert autocast_dtype(float('nan')) == 'float32'


def test_floatx_float32_overflow_in_subprocess(run_python):
    code = ("import numpy as np, theon, theon.tensor as T; x = T.dvector(); "
            "print(theon.function([x], x * 1e40)(np.ones(1))[0])")
    out = run_python(code, 'floatX=float32')
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 1e40
    assert 'overflow' not in out.stderr


# -- 2. ndarray subclasses and complex scalars as inputs --------------------------------------

@pytest.mark.filterwarnings('ignore:the matrix subclass:PendingDeprecationWarning')
def test_matrix_input_is_a_plain_array():
    m = T.dmatrix()
    f = theano.function([m], m.sum(axis=1))
    out = f(np.matrix([[1.0, 2.0], [3.0, 4.0]]))
    assert type(out) is np.ndarray and out.shape == (2,)
    np.testing.assert_allclose(out, [3.0, 7.0])
    # a float32 matrix goes through the same cast rules
    out = f(np.matrix([[1, 2], [3, 4]], dtype='float32'))
    assert out.shape == (2,)


def test_masked_array_input():
    m = T.dmatrix()
    f = theano.function([m], m.sum(axis=1))
    out = f(np.ma.array([[1.0, 2.0], [3.0, 4.0]]))
    assert type(out) is np.ndarray and out.shape == (2,)
    with pytest.raises(TypeError, match='masked'):
        f(np.ma.array([[1.0, 2.0], [3.0, 4.0]], mask=[[0, 1], [0, 0]]))


@pytest.mark.filterwarnings('ignore:the matrix subclass:PendingDeprecationWarning')
def test_shared_matrix_value_is_plain():
    s = theano.shared(np.matrix([[1.0, 2.0]]))
    assert type(s.get_value()) is np.ndarray


def test_complex_scalar_for_float_input_raises_without_complexwarning():
    s = T.dscalar('s')
    f = theano.function([s], s * 2)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(TypeError):
            f(1 + 2j)


# -- 3. as_op checks what the function returns -------------------------------------------------

def _apply(fn, itype, otype, value):
    op = as_op(itypes=[itype], otypes=[otype])(fn)
    x = itype()
    return theano.function([x], op(x))(value)


def test_as_op_refuses_lossy_output_dtype():
    def scale(v):
        return v * 1.5
    with pytest.raises(TypeError) as info:
        _apply(scale, T.ivector, T.ivector, np.array([1, 2], dtype='int32'))
    msg = str(info.value)
    for part in ("'scale'", 'output 0', 'TensorType(int32, vector)', 'float64', '(2,)'):
        assert part in msg, msg


def test_as_op_refuses_wrong_ndim():
    def outer(v):
        return np.outer(v, v)
    with pytest.raises(TypeError) as info:
        _apply(outer, T.dvector, T.dvector, np.ones(2))
    msg = str(info.value)
    assert "'outer'" in msg and 'output 0' in msg and '2 dimensions, not 1' in msg, msg


def test_as_op_accepts_safe_casts():
    out = _apply(lambda v: v.astype('float32'), T.dvector, T.dvector, np.ones(2))
    assert out.dtype == np.float64
    out = _apply(lambda v: [1, 2, 3], T.dvector, T.ivector, np.ones(2))
    assert out.dtype == np.int32 and list(out) == [1, 2, 3]
    out = _apply(lambda v: [0.5, 2.0], T.dvector, T.dvector, np.ones(2))
    np.testing.assert_allclose(out, [0.5, 2.0])
    out = _apply(lambda v: 0.1, T.dvector, T.fscalar, np.ones(2))
    assert out.dtype == np.float32


def test_as_op_refuses_python_float_into_int_output():
    with pytest.raises(TypeError, match='output 0'):
        _apply(lambda v: 1.5, T.dvector, T.iscalar, np.ones(2))


def test_as_op_wrong_number_of_outputs():
    op = as_op(itypes=[T.dvector], otypes=[T.dvector, T.dvector])(lambda v: (v,))
    x = T.dvector()
    with pytest.raises(TypeError, match='2 outputs'):
        theano.function([x], op(x))(np.ones(2))


# -- 4. Theano flags theon does not use --------------------------------------------------------

def test_theano_only_flags_in_THEON_FLAGS_are_accepted(run_python):
    code = ("import theon; c = theon.config; "
            "print(c.floatX, c.optimizer, c.allow_gc, c.blas.ldflags, c.exception_verbosity)")
    out = run_python(code, 'floatX=float32,optimizer=fast_run,allow_gc=False,blas.ldflags=-lblas')
    assert out.returncode == 0, out.stderr
    assert out.stderr == ''
    assert out.stdout.split() == ['float32', 'fast_run', 'False', '-lblas', 'low']


def test_theano_warn_flags_as_tutorial_programs_set_them():
    # (the deep-learning tutorial's rnnrbm.py starts so)
    theano.config.warn.subtensor_merge_bug = False
    assert theano.config.warn.subtensor_merge_bug is False
    assert theano.config.warn.sum_div_dimshuffle_bug is False


def test_unknown_flag_in_THEON_FLAGS_warns(run_python):
    out = run_python("import theon; print(theon.config.floatX)", 'floatX=float32,no_such_flag=3')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'float32'
    assert 'UserWarning' in out.stderr and 'no_such_flag' in out.stderr
    assert 'THEON_FLAGS' in out.stderr
    # known settings are still validated
    out = run_python("import theon", 'floatX=float99')
    assert out.returncode != 0 and 'float99' in out.stderr


@pytest.mark.parametrize('name,default,value', [
    ('exception_verbosity', 'low', 'high'), ('optimizer', 'fast_run', 'None'),
    ('compute_test_value', 'off', 'raise'), ('openmp', False, True),
    ('force_device', False, True), ('warn_float64', 'ignore', 'raise'), ('cxx', '', 'g++'),
    ('allow_gc', True, False), ('linker', 'cvm', 'py'), ('print_active_device', True, False),
    ('deterministic', 'default', 'more'), ('optimizer_including', '', 'fusion'),
    ('optimizer_excluding', '', 'fusion'), ('on_opt_error', 'warn', 'raise'),
    ('blas__ldflags', '', '-lopenblas'), ('gcc__cxxflags', '', '-O3'),
    ('nvcc__fastmath', False, True), ('lib__cnmem', 0.0, 0.5),
    ('gpuarray__preallocate', 0.0, 0.9), ('dnn__enabled', 'auto', 'False'),
    ('warn__subtensor_merge_bug', False, True), ('warn__ignore_bug_before', '0.9', 'all'),
    ('warn__inc_subtensor1_opt', True, False),
])
def test_theano_only_flags_read_and_set(name, default, value):
    cfg = theano.config
    old = getattr(cfg, name)
    if name not in vars(cfg):
        assert old == default
    try:
        setattr(cfg, name, value)
        assert getattr(cfg, name) == value
        if '__' in name:  # Theano's dotted spelling: config.blas.ldflags
            section, key = name.split('__')
            assert getattr(getattr(cfg, section), key) == value
    finally:
        setattr(cfg, name, old)


def test_dotted_section_assignment():
    cfg = theano.config
    old = cfg.gcc__cxxflags
    try:
        cfg.gcc.cxxflags = '-march=native'
        assert cfg.gcc__cxxflags == '-march=native'
    finally:
        cfg.gcc__cxxflags = old


def test_unknown_config_attribute_still_raises():
    with pytest.raises(AttributeError, match="no setting 'floatx'.*Did you mean 'floatX'"):
        theano.config.floatx = 'float32'
    with pytest.raises(AttributeError, match='no_such_setting'):
        theano.config.no_such_setting = 1
    with pytest.raises(AttributeError, match='no_such_setting'):
        _ = theano.config.no_such_setting
    with pytest.raises(ValueError, match='floatX'):
        theano.config.floatX = 'float128'


# -- 5. clone with values and with strict types ------------------------------------------------

def test_clone_replace_by_a_value():
    x = T.dvector('x')
    value = np.ones(2)
    out = theano.clone(x * 2 + 1, replace={x: value})
    np.testing.assert_allclose(out.eval(), [3.0, 3.0])
    assert value.flags.writeable  # the caller's array is not frozen
    # the constant takes the replaced variable's dtype
    f = T.fvector('f')
    out = theano.clone(f * 2, replace={f: [1, 2]})
    assert out.dtype == 'float32'
    np.testing.assert_allclose(out.eval(), [2.0, 4.0])
    # a list of pairs works as well
    out = theano.clone(x + 1, replace=[(x, np.zeros(3))])
    np.testing.assert_allclose(out.eval(), [1.0, 1.0, 1.0])


def test_clone_value_that_does_not_fit():
    x = T.dvector('x')
    with pytest.raises(TypeError) as info:
        theano.clone(x * 2, replace={x: np.ones((2, 2))})
    assert "'x'" in str(info.value) or 'x (' in str(info.value)
    f = T.fvector('f')
    with pytest.raises(TypeError, match='f '):
        theano.clone(f * 2, replace={f: np.ones(2)})  # float64 array into float32


def test_clone_strict_refuses_a_different_type():
    x = T.dvector('x')
    y = T.fvector('y')
    with pytest.raises(TypeError) as info:
        theano.clone(x * 2, replace={x: y})
    msg = str(info.value)
    assert 'x (' in msg and 'y (' in msg and 'float32' in msg and 'float64' in msg, msg
    with pytest.raises(TypeError, match='m '):
        theano.clone(x * 2, replace={x: T.dmatrix('m')})
    # strict=False rebuilds the graph around the new type
    out = theano.clone(x * 2, replace={x: y}, strict=False)
    assert out.dtype == 'float32'
    np.testing.assert_allclose(out.eval({y: np.ones(2, 'float32')}), [2.0, 2.0])
    # a more specific static shape is the same kind of value
    r = T.TensorType('float64', shape=(3,))('r')
    out = theano.clone(x * 2, replace={x: r})
    np.testing.assert_allclose(out.eval({r: np.ones(3)}), [2.0, 2.0, 2.0])


def test_clone_keys_must_be_variables():
    x = T.dvector('x')
    with pytest.raises(TypeError, match='keys'):
        theano.clone(x * 2, replace={'x': x})


# -- 6. build-time index errors are TypeError and IndexError -----------------------------------

@pytest.mark.parametrize('build,words', [
    (lambda x: x[T.fvector()], 'index arrays must hold integers'),
    (lambda x: x[[1.5]], 'index arrays must hold integers'),
    (lambda x: x[T.iscalar(), T.iscalar()], 'too many indices'),
    (lambda x: x[T.dscalar()], 'must be an integer scalar'),
    (lambda x: x[True], 'may not be a boolean'),
])
def test_index_errors_are_type_and_index_errors(build, words):
    x = T.dvector('x')
    with pytest.raises(IndexingError) as info:
        build(x)
    assert isinstance(info.value, TypeError) and isinstance(info.value, IndexError)
    assert words in str(info.value)
    assert THIS_FILE in str(info.value)  # points at the user's line


# -- 7. the README's error example is the real message -----------------------------------------

def test_readme_error_example_matches_the_real_error(floatx):
    floatx('float64')  # the README's data is float64
    x, y = T.matrices('x', 'y')
    c = x + y
    f = theano.function([x, y], c)
    with pytest.raises(ValueError) as info:
        f(np.ones((3, 4)), np.ones((5, 4)))
    first = str(info.value).splitlines()[0].strip()
    text = README.read_text()
    section = text[text.index('## Errors point at your code'):]
    block = section[section.index('```') + 3:]
    block = block[:block.index('```')]
    assert f'ValueError: {first}' in block, (first, block)
    assert 'while computing Elemwise{add}' in str(info.value)
    assert 'inputs: x: float64 array of shape (3, 4); y: float64 array of shape (5, 4)' \
        in str(info.value)
