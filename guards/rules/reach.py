"""What added code may reach: allow-lists that a new disguise cannot get around.

Six rules over one shared pass (`guards.reach`), each complete by construction for its
class: a protected object is usable only called in place, so no alias, default,
container, partial, decorator or attrgetter can carry it; a dunder or private attribute
is refused unless listed, so no `__self__`/`__dict__`/`__class__` route reaches the
builtins; an import outside the allow-list is refused, so no unlisted module is reached.
"""

from __future__ import annotations

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.reach import reach_hits
from guards.rules.astrule import AstRule


class _ReachRule(AstRule):
    tag = ""

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        return [h for h in reach_hits(mod, ctx) if h.signature[0] == self.tag]


class PositionRule(_ReachRule):
    id = "reach.position"
    tag = "position"
    description = ("Protected objects (clocks, os.environ, builtins that reach code or "
                   "attributes, frames, processes, exit hooks, serialisation, the export) and "
                   "modules used other than called in place: bound, passed, stored, returned, "
                   "decorated, defaults, containers, namespaces by name.")


class AttributeRule(_ReachRule):
    id = "reach.attribute"
    tag = "attribute"
    description = ("Attributes outside a protected module's list, torch submodules outside the "
                   "allow-list, private attributes of other objects, modules re-exported "
                   "through other modules, nn.Module hook internals.")


class DunderRule(_ReachRule):
    id = "reach.dunder"
    tag = "dunder"
    description = ("Dunder attributes, names, methods and strings (__self__, __dict__, "
                   "__globals__, __init_subclass__, __set_name__, __reduce__, __del__, ...) "
                   "beyond the few an honest model needs.")


class ShadowNameRule(_ReachRule):
    id = "reach.shadow"
    tag = "shadow"
    description = ("Rebinding or shadowing a protected builtin or an imported name anywhere: "
                   "parameters, defaults, comprehension targets, class bodies, global "
                   "statements, imports.")


class ImportRule(_ReachRule):
    id = "reach.import"
    tag = "import"
    description = ("Imports outside the allow-list of what a training script needs, and "
                   "protected modules or objects bound to other names by import.")


class ClassRule(_ReachRule):
    id = "reach.class"
    tag = "class"
    description = ("Class keywords (metaclass=, __init_subclass__ arguments), metaclasses and "
                   "classes built at run time: code that runs at definition.")


RULES = [PositionRule, AttributeRule, DunderRule, ShadowNameRule, ImportRule, ClassRule]
