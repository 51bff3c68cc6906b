"""The small Theano surface layer libraries use (issue 10, part 5): expected values recorded
from Theano 1.0.5 (Python mode) unless said otherwise."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import theon as theano
import theon.tensor as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- plural constructors -----------------------------------------------------------------------

def test_plural_constructors_split_a_string_of_letters():
    p, t = T.matrices('pt')
    assert (p.name, t.name) == ('p', 't') and p.ndim == 2
    assert [v.name for v in T.scalars('ab')] == ['a', 'b']
    assert [v.name for v in T.vectors('xyz')] == ['x', 'y', 'z']
    assert [v.name for v in T.tensor3s('ab')] == ['a', 'b']
    assert [(v.name, v.dtype) for v in T.fmatrices('uv')] == [('u', 'float32'), ('v', 'float32')]
    assert [v.name for v in T.lvectors('ij')] == ['i', 'j']


def test_plural_constructors_other_forms():
    single = T.matrices('p')  # Theano returns the variable itself for one letter
    assert isinstance(single, T.TensorVariable) and single.name == 'p'
    assert [v.name for v in T.matrices('pt', 'q')] == ['pt', 'q']
    assert [v.name for v in T.matrices('ab', 'c')] == ['ab', 'c']
    two = T.matrices(2)
    assert len(two) == 2 and all(v.name is None for v in two)
    assert len(T.matrices(1)) == 1
    assert [v.name for v in T.vectors('a b')] == ['a', 'b']  # theon's spaces still split


# -- stack -----------------------------------------------------------------------------------

def test_stack_of_tensors_as_arguments_warns_and_stacks():
    x, y = T.vectors('x', 'y')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        s = T.stack(x, y)
    assert [str(w.message) for w in caught] == [
        'stack(*tensors) interface is deprecated, use stack(tensors, axis=0) instead.']
    assert caught[0].category is DeprecationWarning and caught[0].filename == __file__
    assert s.ndim == 2
    f = theano.function([x, y], s)
    np.testing.assert_array_equal(f([1.0, 2.0], [3.0, 4.0]), [[1, 2], [3, 4]])
    a, b = T.scalars('a', 'b')
    with pytest.warns(DeprecationWarning):
        v = T.stack(a, b)
    np.testing.assert_array_equal(theano.function([a, b], v)(1.0, 2.0), [1.0, 2.0])


def test_stack_new_interface_unchanged():
    x, y = T.vectors('x', 'y')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        s0 = T.stack([x, y])
        s1 = T.stack([x, y], 1)
        s2 = T.stack((x, y), axis=1)
        s3 = T.stack(tensors=[x, y], axis=1)
    f = theano.function([x, y], [s0, s1, s2, s3])
    r = f([1.0, 2.0], [3.0, 4.0])
    np.testing.assert_array_equal(r[0], [[1, 2], [3, 4]])
    for k in (1, 2, 3):
        np.testing.assert_array_equal(r[k], [[1, 3], [2, 4]])
    with pytest.raises(TypeError):
        T.stack()


# -- TensorType's name -----------------------------------------------------------------------

def test_tensor_type_name():
    tt = T.TensorType('float32', (False, True), name='foo')
    assert (str(tt), repr(tt), tt.name) == ('foo', 'foo', 'foo')
    assert repr(tt()) == '<foo>'
    assert tt == T.TensorType('float32', (False, True)) and tt.broadcastable == (False, True)
    assert T.TensorType('float32', (False, True)).name is None
    v = tt('v')
    assert v.type.name == 'foo' and v.ndim == 2
    f = theano.function([v], v * 2)
    np.testing.assert_array_equal(f(np.ones((3, 1), 'float32')), 2 * np.ones((3, 1)))


def test_tensor_type_name_pickles():
    import pickle
    tt = T.TensorType('float64', (False,), name='named')
    back = pickle.loads(pickle.dumps(tt))
    assert back == tt and back.name == 'named'


# -- indexing with a list holding slices ------------------------------------------------------

def test_list_with_slices_indexes_as_a_tuple():
    m = T.matrix('m')
    assert m[[slice(None), 1]].type == T.vector().type
    assert m[[slice(0, 2), slice(1, None)]].ndim == 2
    assert m[[1, slice(None)]].ndim == 1
    f = theano.function([m], [m[[slice(None), 1]], m[[slice(0, 2), slice(1, None)]],
                              m[[0, 1]]])
    a = np.arange(12.0).reshape(3, 4)
    r = f(a)
    np.testing.assert_array_equal(r[0], a[:, 1])
    np.testing.assert_array_equal(r[1], a[0:2, 1:])
    np.testing.assert_array_equal(r[2], a[[0, 1]])  # a list of integers stays advanced


# -- graph classes under Theano's module names --------------------------------------------------

def test_gof_and_compile_names():
    import theon.compile
    import theon.gof
    x = T.vector('x')
    s = theano.shared(np.zeros(2))
    assert isinstance(x, theon.gof.Variable) and isinstance(x + 1, theano.gof.Variable)
    assert isinstance(s, theon.compile.SharedVariable)
    assert theon.gof.graph.inputs([x * s]) == [x, s]
    from theon.scan_module import scan_checkpoints, scan_utils
    assert scan_utils.equal_computations([x + 1], [x + 1]) and callable(scan_checkpoints)


# -- GPU modules on a machine without a GPU ------------------------------------------------------

def test_sandbox_cuda_reports_no_gpu(caplog):
    from theon.sandbox import cuda
    from theon.sandbox.cuda import dnn
    assert cuda.cuda_available is False and cuda.cuda_enabled is False
    assert cuda.use('cpu') is None
    with caplog.at_level('ERROR', logger='theano.sandbox.cuda'):
        assert cuda.use('gpu0') is None
    assert 'Not using GPU' in caplog.text
    with pytest.raises(EnvironmentError, match="You forced the use of gpu device 'gpu1'"):
        cuda.use('gpu1', force=True)
    assert dnn.dnn_available() is False and 'CPU' in dnn.dnn_available.msg


def test_gpuarray_reports_no_gpu():
    import theon.gpuarray as g
    assert g.pygpu_activated is False and g.pygpu is None
    assert g.use('') is None
    with pytest.raises(Exception, match='forced the init and bad device provided: cpu'):
        g.use('cpu', force=True)
    with pytest.raises(RuntimeError, match="'cuda'"):
        g.use('cuda')
    with pytest.raises(RuntimeError):
        g.init_dev('cuda0')
    with pytest.raises(g.ContextNotDefined):
        g.get_context(None)


# -- the theano alias ----------------------------------------------------------------------------

def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)


def test_theano_alias_gives_theons_modules():
    proc = _run("""
        import sys
        import theon
        assert 'theano' not in sys.modules
        theon.install_theano_alias()
        theon.install_theano_alias()  # idempotent
        import theano
        import theano.tensor as T
        import theano.tensor.signal.pool
        from theano.sandbox.rng_mrg import MRG_RandomStreams
        from theano.tensor.nnet import conv2d
        from theano.gof.graph import inputs
        import theano.sandbox.cuda, theano.gpuarray
        import theon.sandbox.rng_mrg, theon.tensor.nnet
        assert theano is theon and T is theon.tensor
        assert theano.tensor.signal.pool is sys.modules['theon.tensor.signal.pool']
        assert sys.modules['theano.tensor.signal.pool'] is theano.tensor.signal.pool
        assert MRG_RandomStreams is theon.sandbox.rng_mrg.MRG_RandomStreams
        assert conv2d is theon.tensor.nnet.conv2d and inputs is theon.gof.graph.inputs
        assert theon.tensor.__spec__.name == 'theon.tensor'  # theon's own spec kept
        try:
            import theano.no_such_module
        except ImportError as err:
            assert "theano.no_such_module" in str(err), err
        else:
            raise AssertionError('imported a missing module')
        x = T.matrix('x')
        f = theano.function([x], theano.tensor.signal.pool.pool_2d(x.dimshuffle('x', 'x', 0, 1),
                            (2, 2), ignore_border=True).sum())
        import numpy as np
        assert float(f(np.arange(16.0).reshape(4, 4))) == 5 + 7 + 13 + 15
        theon.compat.uninstall_theano_alias()
        print('ok')
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'ok'


def test_without_the_alias_theano_is_not_theon():
    proc = _run("""
        import sys, theon
        try:
            import theano
        except ImportError:
            print('absent')
        else:
            print('other', theano is theon)
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() in ('absent', 'other False')


def test_theano_scalar_module():
    # (the tutorial's hmc calls theano.scalar.upcast after a plain `import theano`)
    import importlib
    assert theano.scalar.upcast("int8", "float64") == "float64"
    assert importlib.import_module("theon.scalar").upcast("int32", "float32") == "float64"
    assert theano.scalar.exp is theano.scalar.TABLE["exp"]
