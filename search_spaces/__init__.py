"""What can be built: the op registry (:mod:`search_spaces.registry`), the registered ops
(:mod:`search_spaces.ops`) and the zoo of fixed points (:mod:`search_spaces.zoo`)."""

# The op modules register themselves on import; loading them with the package fills the registry
# before anything can ask it (every import of a search_spaces module runs this first), and the
# registry itself never imports its ops.
import search_spaces.ops  # noqa: E402,F401  (imported for registration)
