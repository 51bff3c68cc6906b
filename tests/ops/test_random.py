"""Random streams (issue 10, part 1): ``RandomStreams`` and ``MRG_RandomStreams``.

MRG31k3p against Theano 1.0.5's numbers (recorded literally below: Theano is not a dependency),
both stream classes against numpy statistically, and the stream semantics: successive calls
differ, ``no_default_updates`` repeats, ``seed()`` reseeds, equal draws stay two draws."""
from __future__ import annotations

import numpy as np
import pytest
import theon as theano
import theon.tensor as T
from theon.ops.random import (
    MRGUniform,
    RandomFunction,
    decode_random_state,
    encode_random_state,
    mrg_step,
    mrg_substreams,
    mrg_uniform_sample,
)
from theon.sandbox.rng_mrg import MRG_RandomStreams
from theon.tensor.shared_randomstreams import RandomStreams

# Recorded with Theano 1.0.5 (Python mode: THEANO_FLAGS=cxx=) and numpy 1.23.5:
#   s = MRG_RandomStreams(seed); u = s.uniform((2, 3)); n = s.normal((5,))
#   b = s.binomial((3, 4), p=0.3, dtype=floatX); f = theano.function([], [u, n, b])
# and three calls of f, for floatX float64 and float32.
MRG_REFERENCE = {  # (floatX, seed, draw) -> three successive calls
    ('float64', 12345, 'U'): [
        [0.7353244530968368, 0.2585685825906694, 0.6940806899219751, 0.7705746139399707,
         0.4939101580530405, 0.9062023567967117],
        [0.6142074400559068, 0.9489980279468, 0.18046841165050864, 0.8138928869739175,
         0.9027785388752818, 0.009030417073518038],
        [0.11007806099951267, 0.4309556516818702, 0.003993193618953228, 0.9650539481081069,
         0.27498403564095497, 0.7953705741092563],
    ],
    ('float64', 12345, 'N'): [
        [0.9932952515630092, -0.07867899779613197, 1.3673931905387975, 0.5732602516540954,
         -1.2115759668799284],
        [1.6853470258722152, 0.8117291071585675, -2.6290982210140768, -0.2866443988305736,
         -0.037757188204592146],
        [-0.9456856752252766, 0.02180962390094853, -1.38155470571829, -1.066784925170325,
         -1.5451062266333573],
    ],
    ('float64', 12345, 'B'): [
        [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
    ],
    ('float64', 987, 'U'): [
        [0.8976723556406796, 0.7788806543685496, 0.2032496202737093, 0.39235351514071226,
         0.3959933198057115, 0.759944167919457],
        [0.8879888812080026, 0.1623921268619597, 0.24043535394594073, 0.3788041980005801,
         0.16039655590429902, 0.4184695156291127],
        [0.33055379986763, 0.9238858432509005, 0.2989875632338226, 0.4462966928258538,
         0.6895436621271074, 0.32580922404304147],
    ],
    ('float64', 987, 'N'): [
        [1.0252851782952057, 0.05778256200445282, -1.157985294725445, 1.2799130713939597,
         -0.23158382240357378],
        [1.0812179099937944, 0.19598323587184968, -0.41012693376627335, -0.4240915431555723,
         -0.5193026750150083],
        [-0.8512329438503348, -0.2655865301616648, 0.16050190775581497, 0.4176381753025549,
         -2.5580623564596725],
    ],
    ('float64', 987, 'B'): [
        [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    ],
    ('float32', 12345, 'U'): [
        [0.7353243827819824, 0.25856855511665344, 0.694080650806427, 0.7705745697021484,
         0.49391013383865356, 0.9062023162841797],
        [0.61420738697052, 0.948997974395752, 0.1804683953523636, 0.8138928413391113,
         0.9027785062789917, 0.00903041660785675],
        [0.11007805168628693, 0.4309556186199188, 0.003993193153291941, 0.965053915977478,
         0.2749840319156647, 0.7953705191612244],
    ],
    ('float32', 12345, 'N'): [
        [0.9932953119277954, -0.07867909967899323, 1.3673932552337646, 0.5732603073120117,
         -1.211575984954834],
        [1.685347080230713, 0.8117291331291199, -2.6290981769561768, -0.28664448857307434,
         -0.03775753080844879],
        [-0.9456859827041626, 0.021809684112668037, -1.3815548419952393, -1.0667846202850342,
         -1.545106291770935],
    ],
    ('float32', 12345, 'B'): [
        [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
    ],
    ('float32', 987, 'U'): [
        [0.8976722955703735, 0.7788805961608887, 0.20324960350990295, 0.39235350489616394,
         0.39599329233169556, 0.7599441409111023],
        [0.887988805770874, 0.16239212453365326, 0.24043534696102142, 0.37880417704582214,
         0.160396546125412, 0.41846948862075806],
        [0.3305537700653076, 0.9238857626914978, 0.2989875376224518, 0.44629666209220886,
         0.689543604850769, 0.32580921053886414],
    ],
    ('float32', 987, 'N'): [
        [1.025285243988037, 0.057782646268606186, -1.1579854488372803, 1.279913067817688,
         -0.2315841168165207],
        [1.0812177658081055, 0.19598324596881866, -0.4101269841194153, -0.4240918755531311,
         -0.5193027853965759],
        [-0.8512329459190369, -0.2655877470970154, 0.16050192713737488, 0.41763836145401,
         -2.5580620765686035],
    ],
    ('float32', 987, 'B'): [
        [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    ],
}
# MRG_RandomStreams(42), floatX float64: u = s.uniform(x.shape) (x a 3x2 matrix),
# m = s.multinomial(pvals=P, n=3), c = s.choice(size=2, replace=False, p=P),
# t = s.truncated_normal((7,), avg=1., std=2.), two calls; then s.seed(7) and u again
P = np.array([[.2, .3, .5], [.6, .1, .3]])
SYMBOLIC_REFERENCE = [
    ([0.08075201511383057, 0.9267640095204115, 0.8597198463976383, 0.2507445006631315,
      0.8466411442495883, 0.4791515697725117],
     [2, 1, 0, 2, 1, 0], [2, 0, 2, 0],
     [1.8087211836325727, 0.9619567982586668, 2.234001380245269, 0.3522594111903785,
      -1.1987665950419482, 1.5629038301347813, -2.632233045158464]),
    ([0.08033995237201452, 0.34734230581671, 0.18044656235724688, 0.4416554169729352,
      0.028106990735977888, 0.35823399759829044],
     [0, 1, 2, 2, 1, 0], [0, 1, 2, 0],
     [4.265992515486166, 3.329395994111116, -0.14946436153257436, -1.8016612413015887,
      2.383978914408045, 1.0794076680778597, -1.6156652430455662]),
]
RESEEDED_U = [0.013458669185638428, 0.15446884371340275, 0.47661997424438596,
              0.20845905179157853, 0.9744418254122138, 0.24652526155114174]
# MRG_RandomStreams(12345).get_substream_rstates(5, 'float64') and the rstate after it
SUBSTREAMS = [[12345] * 6,
              [1613322692, 623311037, 1722317882, 1563970864, 792350268, 619030428],
              [951422716, 416944718, 1329311079, 1678647957, 55905791, 588091391],
              [633017320, 754813095, 1852802056, 1286382983, 619510916, 1985727270],
              [1917166970, 1614507274, 14454538, 2075550713, 380800384, 1297245527]]
RSTATE_AFTER = [336690377, 597094797, 1245771585, 85196284, 523477687, 2094976052]
# MRG_RandomStreams([1, 2, 3, 4, 5, 6]): u = s.uniform((13,), nstreams=5, dtype='float32'),
# v = s.uniform((2, 40), low=-1., high=3., dtype='float64'); two calls (v[:, ::9] kept); then
# u's state
SIX_SEED_REFERENCE = [
    ([0.0037538392934948206, 0.8410847187042236, 0.9649227857589722, 0.48346447944641113,
      0.5654911398887634, 0.0017363409278914332, 0.8028143048286438, 0.1938399374485016,
      0.702865719795227, 0.8828232288360596, 0.648223876953125, 0.7010219693183899,
      0.9886318445205688],
     [1.0760531891137362, 0.6021863985806704, -0.9015328846871853, 0.3983778078109026,
      2.6429759357124567, 1.9365468975156546, 2.6436702236533165, 1.0404557771980762,
      1.5594992488622665, 2.1075904704630375]),
    ([0.7224698662757874, 0.0758451297879219, 0.6132798790931702, 0.2982923686504364,
      0.47584760189056396, 0.31217333674430847, 0.45446082949638367, 0.6948369741439819,
      0.06941434741020203, 0.48803192377090454, 0.9729831218719482, 0.26597729325294495,
      0.38794082403182983],
     [0.9863935150206089, 1.5312196146696806, -0.924176661297679, 0.5358466263860464,
      1.565355371683836, 0.11396601796150208, 1.5969547647982836, 0.5390565264970064,
      2.5529690347611904, -0.8118806052953005]),
]
SIX_SEED_STATE = [[31523284, 1085334050, 16835332, 89541510, 414946876, 612826722],
                  [896245690, 1082062182, 1652555950, 325063742, 106114939, 1489679762],
                  [811333720, 420481715, 1512660266, 2125720746, 1075814237, 195651701],
                  [1344687261, 1823086113, 1854795662, 1195621078, 1182508076, 345402963],
                  [881203888, 463784318, 1301692098, 1980646874, 1589392940, 1553327205]]
# RandomStreams(234): u = r.uniform((2, 2)); n = r.normal((3,)); b = r.binomial((4,), n=5,
# p=0.3); two calls
RANDOMSTREAMS_REFERENCE = [
    ([0.12672381400898758, 0.9709159656786431, 0.13989097862581312, 0.887548254199325],
     [0.3732844727674915, -0.6574667187293483, -0.3630237287579288], [0, 1, 1, 0]),
    ([0.3197141503373775, 0.47584376667160355, 0.24129163169315337, 0.4204608139408894],
     [-0.9748462455013606, -1.8352089147235817, -0.6101067611321291], [2, 3, 2, 1]),
]
# Box-Muller's log, sqrt, cos and sin may differ from the reference's numpy by an ulp or two
NORMAL_RTOL = {"float64": 1e-13, "float32": 3e-6}


STREAMS = [MRG_RandomStreams, RandomStreams]


def _nodes(f, cls):
    return [n for n in f.maker.fgraph.toposort() if isinstance(n.op, cls)]


# -- MRG31k3p against Theano 1.0.5 -----------------------------------------------------------------

@pytest.mark.parametrize("floatx", ["float64", "float32"])
@pytest.mark.parametrize("seed", [12345, 987])
def test_mrg_matches_theano(floatx, seed):
    theano.config.floatX = floatx
    s = MRG_RandomStreams(seed)
    u = s.uniform((2, 3))
    n = s.normal((5,))
    b = s.binomial((3, 4), p=0.3, dtype=floatx)
    f = theano.function([], [u, n, b])
    for k in range(3):
        got_u, got_n, got_b = f()
        assert got_u.dtype == got_n.dtype == got_b.dtype == floatx
        assert got_u.shape == (2, 3) and got_n.shape == (5,) and got_b.shape == (3, 4)
        np.testing.assert_array_equal(got_u.ravel(), MRG_REFERENCE[floatx, seed, "U"][k])
        np.testing.assert_allclose(got_n, MRG_REFERENCE[floatx, seed, "N"][k],
                                   rtol=NORMAL_RTOL[floatx], atol=0)
        np.testing.assert_array_equal(got_b.ravel(), MRG_REFERENCE[floatx, seed, "B"][k])


def test_mrg_symbolic_size_multinomial_choice_truncated_match_theano():
    s = MRG_RandomStreams(42)
    x = T.matrix()
    u = s.uniform(x.shape)
    m = s.multinomial(pvals=P, n=3)
    c = s.choice(size=2, replace=False, p=P)
    t = s.truncated_normal((7,), avg=1., std=2.)
    f = theano.function([x], [u, m, c, t])
    for want_u, want_m, want_c, want_t in SYMBOLIC_REFERENCE:
        got_u, got_m, got_c, got_t = f(np.zeros((3, 2)))
        assert got_u.shape == (3, 2) and got_m.dtype == got_c.dtype == "int64"
        np.testing.assert_array_equal(got_u.ravel(), want_u)
        np.testing.assert_array_equal(got_m.ravel(), want_m)
        np.testing.assert_array_equal(got_c.ravel(), want_c)
        np.testing.assert_allclose(got_t, want_t, rtol=1e-13, atol=0)
    s.seed(7)
    np.testing.assert_array_equal(f(np.zeros((3, 2)))[0].ravel(), RESEEDED_U)


def test_mrg_six_int_seed_uneven_streams_and_bounds_match_theano():
    s = MRG_RandomStreams([1, 2, 3, 4, 5, 6])
    u = s.uniform((13,), nstreams=5, dtype="float32")
    v = s.uniform((2, 40), low=-1., high=3., dtype="float64")
    f = theano.function([], [u, v])
    for want_u, want_v in SIX_SEED_REFERENCE:
        got_u, got_v = f()
        assert got_u.dtype == "float32" and got_v.dtype == "float64"
        np.testing.assert_array_equal(got_u, want_u)
        np.testing.assert_allclose(got_v[:, ::9].ravel(), want_v, rtol=1e-15)
    np.testing.assert_array_equal(s.state_updates[0][0].get_value(), SIX_SEED_STATE)


def test_mrg_float16_matches_theano():
    # Theano 1.0.5: f = theano.function([], MRG_RandomStreams(77).uniform((9,),
    # dtype='float16')), two calls (its float16 path: (raw & 0x7fff) + 1, times 3.0458e-05)
    want = [[0.30029296875, 0.7900390625, 0.60986328125, 0.205810546875, 0.87890625,
             0.90087890625, 0.447265625, 0.0079803466796875, 0.72705078125],
            [0.006427764892578125, 0.1845703125, 0.63232421875, 0.8173828125, 0.5068359375,
             0.6875, 0.96337890625, 0.92041015625, 0.496337890625]]
    f = theano.function([], MRG_RandomStreams(77).uniform((9,), dtype="float16"))
    for w in want:
        got = f()
        assert got.dtype == "float16"
        np.testing.assert_array_equal(got, w)


def test_mrg_substreams_match_theano():
    s = MRG_RandomStreams(12345)
    np.testing.assert_array_equal(s.get_substream_rstates(5, "float64"), SUBSTREAMS)
    np.testing.assert_array_equal(s.rstate, RSTATE_AFTER)
    # the binary-power jump gives the same rows as jumping one stream at a time
    many = mrg_substreams(np.array(SUBSTREAMS[0], dtype=np.int32), 37)
    np.testing.assert_array_equal(many[:5], SUBSTREAMS)
    np.testing.assert_array_equal(mrg_substreams(many[35], 2)[1], many[36])


def test_mrg_step_is_the_scalar_recurrence():
    """The sampler's elements are MRG31k3p's recurrence, written here with exact integers."""
    state = [12345, 54321, 999, 7, 8, 9]
    new, samples = mrg_uniform_sample(np.array([state], dtype=np.int32), 4, "float64")
    x1, x2 = state[:3], state[3:]
    for k in range(4):
        y1 = ((2 ** 22) * x1[1] + (2 ** 7 + 1) * x1[2]) % 2147483647
        y2 = ((2 ** 15) * x2[0] + (2 ** 15 + 1) * x2[2]) % 2147462579
        x1, x2 = [y1, x1[0], x1[1]], [y2, x2[0], x2[1]]
        raw = y1 - y2 + (2147483647 if y1 <= y2 else 0)
        assert samples[k] == raw * 2.0 ** -31
    np.testing.assert_array_equal(new[0], x1 + x2)
    assert [int(v) for v in mrg_step(*state)[:6]] == [
        int(v) for v in mrg_uniform_sample(np.array([state], dtype=np.int32), 1, "float64")[0][0]]


def _theano_int32_step(x11, x12, x13, x21, x22, x23):
    """Theano's own formulation, in int32 that wraps on overflow (numpy int32 arrays do)."""
    i32 = np.int32
    m1, m2 = i32(2147483647), i32(2147462579)

    def once(y, m):
        return np.where((y < 0) | (y >= m), y - m, y).astype(np.int32)
    with np.errstate(over="ignore"):
        y1 = once(((x12 & i32(511)) << i32(22)) + (x12 >> i32(9)) + ((x13 & i32(16777215))
                                                                    << i32(7)) + (x13 >> i32(24)),
                  m1)
        y1 = once(y1 + x13, m1)
        z1 = once(((x21 & i32(65535)) << i32(15)) + i32(21069) * (x21 >> i32(16)), m2)
        z2 = once(((x23 & i32(65535)) << i32(15)) + i32(21069) * (x23 >> i32(16)), m2)
        z2 = once(z2 + x23, m2)
        z2 = once(z2 + z1, m2)
    raw = np.where(y1 <= z2, y1.astype(np.int64) - z2 + 2147483647, y1.astype(np.int64) - z2)
    return y1, x11, x12, z2, x21, x22, raw


def test_mrg_step_equals_theano_int32_formulation():
    """mrg_step's exact int64 steps give what the reference's overflowing int32 steps give, on
    200,000 random states and the extreme ones (every sum near 2**31 and 2**32)."""
    rng = np.random.RandomState(3)
    n = 200000
    first = rng.randint(0, 2147483647, size=(3, n))
    second = rng.randint(0, 2147462579, size=(3, n))
    # the largest values, and values whose masked parts are all ones (0x7FFFFDFF & 511 = 511)
    edges1 = np.array([0, 1, 511, 2 ** 24 - 1, 2147483646, 0x7FFFFDFF, 0x7EFFFFFF, 0x7FFFFFFE])
    edges2 = np.array([0, 1, 65535, 65536, 2147462578, 0x7FFEFFFF, 2 ** 30, 0x7FFF0000])
    grid1 = np.array(np.meshgrid(edges1, edges1, edges1)).reshape(3, -1)
    grid2 = np.array(np.meshgrid(edges2, edges2, edges2)).reshape(3, -1)
    first = np.concatenate([first, grid1, grid1], axis=1)
    second = np.concatenate([second, grid2, grid2[::-1]], axis=1)
    cols = [c.astype(np.int64) for c in (*first, *second)]
    ours = mrg_step(*cols)
    theirs = _theano_int32_step(*(c.astype(np.int32) for c in cols))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_mrg_refuses_bad_seeds_and_sizes():
    for bad in (0, 2147462579):
        with pytest.raises(ValueError):
            MRG_RandomStreams(bad)
    with pytest.raises(ValueError):
        MRG_RandomStreams([0, 0, 0, 1, 1, 1])
    with pytest.raises(TypeError):
        MRG_RandomStreams([1, 2, 3])
    s = MRG_RandomStreams(1)
    with pytest.raises(ValueError, match="<= 0") as err:
        s.uniform((2, 0))
    assert "test_random.py" in str(err.value)  # names the user's line
    with pytest.raises(TypeError, match="size"):
        s.uniform("abc")
    with pytest.raises(TypeError, match="dtype"):
        s.uniform((2,), dtype="int32")
    with pytest.raises(NotImplementedError):
        s.binomial((2,), n=3, p=0.5)
    with pytest.raises(NotImplementedError):
        s.choice(size=1, p=P)  # with replacement: not in Theano either
    with pytest.raises(ValueError):
        s.multinomial(size=(2,), pvals=P)
    with pytest.raises(TypeError):
        s.uniform((2,), foo=1)


def test_mrg_state_of_wrong_shape_raises_naming_the_op():
    s = MRG_RandomStreams(1)
    u = s.uniform((2,))
    state = s.state_updates[0][0]
    f = theano.function([], u)
    state.set_value(np.zeros((3, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="MRG state"):
        f()


# -- statistics against numpy ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", STREAMS)
def test_uniform_normal_binomial_statistics(cls):
    srng = cls(2024)
    u = srng.uniform((200, 250), low=-1., high=3.)
    n = srng.normal((200, 250), avg=2., std=3.)
    b = srng.binomial((200, 250), p=0.3, dtype="float64")
    f = theano.function([], [u, n, b])
    gu, gn, gb = f()
    assert gu.dtype == gn.dtype == "float64" and gb.dtype == "float64"
    assert gu.min() > -1 and gu.max() < 3
    ref = np.random.RandomState(0)
    for got, want in ((gu, ref.uniform(-1, 3, 50000)), (gn, ref.normal(2, 3, 50000)),
                      (gb, ref.binomial(1, 0.3, 50000))):
        # 50,000 samples: the mean within 4 standard errors, the variance within 3%
        assert abs(got.mean() - want.mean()) < 4 * 2 * want.std() / np.sqrt(50000)
        assert abs(got.var() / want.var() - 1) < 0.03
    assert set(np.unique(gb)) == {0., 1.}


def test_mrg_truncated_normal_statistics():
    srng = MRG_RandomStreams(5)
    t = srng.truncated_normal((100000,), avg=1., std=2.)
    got = theano.function([], t)()
    # truncated at 2 standard deviations of the underlying normal (scaled to keep std)
    bound = 2 * 2 / 0.87962566103423978
    assert got.min() >= 1 - bound - 1e-12 and got.max() <= 1 + bound + 1e-12
    assert abs(got.mean() - 1) < 0.03 and abs(got.std() - 2) < 0.03


def test_mrg_multinomial_and_choice_statistics():
    srng = MRG_RandomStreams(9)
    pv = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    m = srng.multinomial(pvals=pv, n=4000, dtype="float64")
    c = srng.choice(size=3, replace=False, p=pv[:1].repeat(5000, axis=0))
    gm, gc = theano.function([], [m, c])()
    assert gm.dtype == "float64" and gm.shape == (2, 3)
    np.testing.assert_array_equal(gm.sum(axis=1), [4000, 4000])
    np.testing.assert_allclose(gm / 4000, pv, atol=0.03)
    assert gc.shape == (5000, 3)
    assert all(len(set(row)) == 3 for row in gc[:50])  # without replacement
    np.testing.assert_allclose(np.bincount(gc[:, 0], minlength=3) / 5000, pv[0], atol=0.03)


def test_randomstreams_other_draws():
    rs = RandomStreams(11)
    ri = rs.random_integers((3000,), low=-2, high=2)
    perm = rs.permutation((4,), n=6)
    one = rs.permutation(n=5)
    ch = rs.choice((3000,), a=4, p=[0.1, 0.2, 0.3, 0.4])
    mn = rs.multinomial((2,), n=1000, pvals=[0.25, 0.75])
    po = rs.poisson((3000,), lam=3.0)
    f = theano.function([], [ri, perm, one, ch, mn, po])
    gri, gperm, gone, gch, gmn, gpo = f()
    assert gri.dtype == "int64" and set(np.unique(gri)) == {-2, -1, 0, 1, 2}
    assert gperm.shape == (4, 6) and all(sorted(r) == list(range(6)) for r in gperm)
    assert sorted(gone) == list(range(5))
    np.testing.assert_allclose(np.bincount(gch, minlength=4) / 3000, [.1, .2, .3, .4],
                               atol=0.03)
    assert gmn.shape == (2, 2) and list(gmn.sum(axis=1)) == [1000, 1000]
    assert abs(gpo.mean() - 3) < 0.15


@pytest.mark.parametrize("cls", STREAMS)
def test_binomial_symbolic_size_and_p_as_dropout_writes_it(cls):
    srng = cls(4)
    x = T.matrix("x")
    p = T.dscalar("p")
    mask = srng.binomial(size=x.shape, n=1, p=1 - p, dtype=theano.config.floatX)
    assert mask.dtype == theano.config.floatX and mask.ndim == 2
    f = theano.function([x, p], x * mask)
    got = f(np.ones((300, 100)), 0.25)
    assert got.shape == (300, 100) and set(np.unique(got)) == {0., 1.}
    assert abs(got.mean() - 0.75) < 0.02
    assert f(np.ones((2, 3)), 0.0).tolist() == [[1.] * 3] * 2


def test_randomstreams_symbolic_n_and_p():
    rs = RandomStreams(3)
    n, p = T.lscalar("n"), T.dvector("p")
    b = rs.binomial(n=n, p=p)  # the shape follows p
    got = theano.function([n, p], b)(1000, np.array([0.1, 0.5, 0.9]))
    assert got.shape == (3,) and got.dtype == "int64"
    np.testing.assert_allclose(got / 1000, [0.1, 0.5, 0.9], atol=0.06)


def test_randomstreams_shape_follows_the_parameters_without_size():
    rs = RandomStreams(2)
    a, r = T.dmatrix("a"), T.drow("r")
    drawn = [rs.normal(avg=a, std=r), rs.uniform(low=r, high=2., ndim=3), rs.choice(a=3)]
    f = theano.function([a, r], drawn + [d.shape for d in drawn])
    got = f(np.zeros((4, 2)), np.ones((1, 2)))
    assert [g.shape for g in got[:3]] == [(4, 2), (1, 1, 2), ()]
    assert [tuple(s) for s in got[3:]] == [(4, 2), (1, 1, 2), ()]
    assert np.all((got[1] >= 1) & (got[1] < 2)) and got[2] in (0, 1, 2)


def test_randomstreams_matches_theano():
    r = RandomStreams(234)
    u = r.uniform((2, 2))
    n = r.normal((3,))
    b = r.binomial((4,), n=5, p=0.3)
    f = theano.function([], [u, n, b])
    for want_u, want_n, want_b in RANDOMSTREAMS_REFERENCE:
        got_u, got_n, got_b = f()
        np.testing.assert_array_equal(got_u.ravel(), want_u)
        np.testing.assert_array_equal(got_n, want_n)
        np.testing.assert_array_equal(got_b, want_b)


# -- shapes and dtypes -----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", STREAMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_and_dtypes(cls, dtype):
    srng = cls(1)
    x = T.tensor3("x")
    n = T.lscalar("n")
    draws = [srng.uniform((2, 3), dtype=dtype), srng.normal(x.shape, dtype=dtype),
             srng.uniform((n, 2), dtype=dtype), srng.normal((n,), dtype=dtype),
             srng.binomial((3, n), p=0.5, dtype=dtype)]
    if cls is MRG_RandomStreams:
        draws.append(srng.truncated_normal((n, 3), dtype=dtype))
    f = theano.function([x, n], draws)
    shapes = f(np.zeros((4, 1, 2)), 5)
    want = [(2, 3), (4, 1, 2), (5, 2), (5,), (3, 5), (5, 3)]
    for d, got, w in zip(draws, shapes, want):
        assert got.shape == w and got.dtype == dtype == d.dtype and got.ndim == d.ndim
    # the shapes are known without drawing
    g = theano.function([x, n], [d.shape for d in draws], no_default_updates=True)
    assert [tuple(s) for s in g(np.zeros((4, 1, 2)), 5)] == want[:len(draws)]
    assert not _nodes(g, (MRGUniform, RandomFunction))
    assert draws[0].type.shape == (None, None) or draws[0].type.shape == (2, 3)


def test_mrg_uniform_static_ones_broadcast():
    u = MRG_RandomStreams(1).uniform((1, 3))
    assert u.broadcastable == (True, False)


def test_random_state_encoding_roundtrip():
    rs = np.random.RandomState(17)
    rs.normal(size=3)  # a cached gaussian in the state
    enc = encode_random_state(rs)
    twin = decode_random_state(enc)
    np.testing.assert_array_equal(twin.normal(size=5), rs.normal(size=5))
    rstream = RandomStreams(1)
    u = rstream.uniform((3,))
    state = rstream[u]
    assert isinstance(state, np.random.RandomState)
    expected = state.uniform(0., 1., (3,))
    np.testing.assert_array_equal(theano.function([], u)(), expected)
    rstream[u] = np.random.RandomState(5)
    np.testing.assert_array_equal(theano.function([], u)(),
                                  np.random.RandomState(5).uniform(0., 1., (3,)))


# -- stream semantics ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", STREAMS)
def test_successive_calls_differ_and_no_default_updates_repeats(cls):
    srng = cls(8)
    u = srng.normal((4,))
    f = theano.function([], u)
    a, b = f(), f()
    assert not np.array_equal(a, b)
    g = theano.function([], u, no_default_updates=True)
    c, d = g(), g()
    np.testing.assert_array_equal(c, d)
    np.testing.assert_array_equal(f(), c)  # g did not advance the state f then advances
    h = theano.function([], u, no_default_updates=[srng.state_updates[0][0]])
    np.testing.assert_array_equal(h(), h())


@pytest.mark.parametrize("cls", STREAMS)
def test_seed_reseeds_every_stream(cls):
    srng = cls(21)
    u, v = srng.uniform((3,)), srng.normal((2, 2))
    f = theano.function([], [u, v])
    first = f()
    f()
    srng.seed(21)
    for got, want in zip(f(), first):
        np.testing.assert_array_equal(got, want)
    srng.seed(99)
    other = f()
    fresh = cls(99)
    g = theano.function([], [fresh.uniform((3,)), fresh.normal((2, 2))])
    for got, want in zip(other, g()):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(other[0], first[0])
    srng.seed()  # the first seed again
    np.testing.assert_array_equal(f()[0], first[0])


@pytest.mark.parametrize("cls", STREAMS)
def test_two_equal_draws_are_two_draws(cls):
    srng = cls(3)
    a = srng.uniform((5,))
    b = srng.uniform((5,))
    f = theano.function([], [a, b, a + b])
    ga, gb, gs = f()
    assert not np.array_equal(ga, gb)
    np.testing.assert_allclose(gs, ga + gb)
    assert len(_nodes(f, (MRGUniform, RandomFunction))) == 2


def test_draws_are_not_constant_folded():
    srng = MRG_RandomStreams(3)
    u = srng.uniform((3,))
    f = theano.function([], u, mode=theano.FAST_RUN)
    assert len(_nodes(f, MRGUniform)) == 1
    assert not np.array_equal(f(), f())


def test_no_gradient_through_a_draw():
    """A float parameter of a draw has no gradient (an error naming the op if it is used);
    the draw itself is a constant for the gradient of what multiplies it."""
    x = T.dscalar("x")
    with pytest.raises(Exception, match="RandomFunction.*random sampling"):
        T.grad(RandomStreams(1).normal((3,), avg=x).sum(), x)
    srng = MRG_RandomStreams(1)
    u = srng.uniform((3,))
    f = theano.function([x], [T.grad((u * x).sum(), x), u.sum()])
    g, total = f(2.)
    assert g == total


# -- in compiled training and in scan --------------------------------------------------------------

@pytest.mark.parametrize("cls", STREAMS)
def test_dropout_in_a_training_function(cls):
    """A one-hidden-layer net trained by SGD with dropout on the hidden units, written as
    Theano code writes it: the mask is redrawn every call, the loss falls, and the test-time
    function (no dropout) is deterministic."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    Y = (X @ rng.randn(5, 1) > 0).astype("float64")
    srng = cls(1234)
    x, y = T.matrix("x"), T.matrix("y")
    W1 = theano.shared(rng.randn(5, 16) * 0.3, name="W1")
    W2 = theano.shared(rng.randn(16, 1) * 0.3, name="W2")
    h = T.tanh(T.dot(x, W1))
    p_drop = 0.5
    mask = srng.binomial(size=h.shape, n=1, p=1 - p_drop, dtype=theano.config.floatX)
    out = T.nnet.sigmoid(T.dot(h * mask / (1 - p_drop), W2))
    loss = T.nnet.binary_crossentropy(out, y).mean()
    params = [W1, W2]
    grads = T.grad(loss, params)
    train = theano.function([x, y], [loss, mask], updates=[(p, p - 0.5 * g)
                                                           for p, g in zip(params, grads)])
    test_out = T.nnet.sigmoid(T.dot(h, W2))
    test_loss = theano.function([x, y], T.nnet.binary_crossentropy(test_out, y).mean())
    before = test_loss(X, Y)
    masks = []
    for _ in range(150):
        _, m = train(X, Y)
        masks.append(m)
    assert not np.array_equal(masks[0], masks[1])
    assert abs(np.mean(masks) - 0.5) < 0.02
    after = test_loss(X, Y)
    assert after < 0.7 * before
    assert test_loss(X, Y) == after


@pytest.mark.parametrize("cls", STREAMS)
def test_scan_with_the_draws_updates_given_explicitly(cls):
    srng = cls(6)

    def step():
        u = srng.uniform((2,))
        return u, dict([srng.state_updates[-1][:2]])
    out, updates = theano.scan(step, n_steps=3)
    f = theano.function([], out, updates=updates)
    a, b = f(), f()
    assert a.shape == (3, 2)
    assert len({tuple(r) for r in np.concatenate([a, b])}) == 6  # every step a new draw


@pytest.mark.parametrize("cls", STREAMS)
def test_scan_returns_the_draws_updates(cls):
    srng = cls(6)
    out, updates = theano.scan(lambda: srng.uniform((2,)), n_steps=3)
    assert len(updates) == 1
    f = theano.function([], out, updates=updates)
    a, b = f(), f()
    assert len({tuple(r) for r in np.concatenate([a, b])}) == 6


@pytest.mark.parametrize("cls", STREAMS)
def test_rbm_contrastive_divergence_through_scan(cls):
    """The deep-learning tutorial's RBM step, written as there: binomial samples with a
    symbolic p and size inside a scan Gibbs chain; scan's updates carry the streams' states
    and the training function's updates add the parameters'."""
    rng = np.random.RandomState(123)
    theano_rng = cls(rng.randint(2 ** 30))
    W = theano.shared(rng.uniform(-0.3, 0.3, (12, 5)), name="W")
    hbias, vbias = theano.shared(np.zeros(5), name="hbias"), theano.shared(np.zeros(12),
                                                                              name="vbias")
    x = T.matrix("x")

    def sample(mean):
        return theano_rng.binomial(size=mean.shape, n=1, p=mean, dtype=theano.config.floatX)

    def gibbs_hvh(h0):
        v1_mean = T.nnet.sigmoid(T.dot(h0, W.T) + vbias)
        v1 = sample(v1_mean)
        h1_mean = T.nnet.sigmoid(T.dot(v1, W) + hbias)
        return [v1_mean, v1, h1_mean, sample(h1_mean)]

    def free_energy(v):
        return -T.dot(v, vbias) - T.sum(T.log(1 + T.exp(T.dot(v, W) + hbias)), axis=1)

    h0 = sample(T.nnet.sigmoid(T.dot(x, W) + hbias))
    (_, v_samples, _, _), updates = theano.scan(gibbs_hvh, outputs_info=[None, None, None, h0],
                                                 n_steps=3)
    assert len(updates) == 2  # the two draws of the body
    chain_end = v_samples[-1]
    cost = T.mean(free_energy(x)) - T.mean(free_energy(chain_end))
    params = [W, hbias, vbias]
    for p, g in zip(params, T.grad(cost, params, consider_constant=[chain_end])):
        updates[p] = p - 0.1 * g
    train = theano.function([x], [cost, chain_end], updates=updates)
    data = (rng.rand(20, 12) > 0.5).astype("float64")
    W0 = W.get_value()
    results = [train(data) for _ in range(4)]
    ends = [e for _, e in results]
    assert all(set(np.unique(e)) <= {0., 1.} for e in ends)
    assert len({e.tobytes() for e in ends}) == 4  # every call samples a new chain
    assert not np.allclose(W.get_value(), W0)


@pytest.mark.parametrize("cls", STREAMS)
def test_a_compiled_function_with_draws_pickles_and_goes_on_with_the_stream(cls):
    import pickle
    srng = cls(11)
    x = T.dvector("x")
    f = theano.function([x], x * srng.binomial(size=x.shape, p=0.5, dtype="float64")
                        + srng.uniform((2,)).sum())
    f(np.ones(8))
    g = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(g(np.ones(8)), f(np.ones(8)))  # the same state, pickled
    np.testing.assert_array_equal(g(np.ones(8)), f(np.ones(8)))
