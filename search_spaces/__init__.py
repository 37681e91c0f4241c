"""What can be built: the op registry (:mod:`search_spaces.registry`), the registered ops
(:mod:`search_spaces.ops`) and the zoo of fixed points (:mod:`search_spaces.zoo`)."""
