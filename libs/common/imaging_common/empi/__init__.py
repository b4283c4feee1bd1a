"""Enterprise Master Patient Index (smart-imaging standard 4.2.3, 5.1.2, 6.1.3).

- identifiers: assigning authorities, GB 11643 resident ID validation, masking
- names / record / comparators: what is compared and how (pinyin, homophones, typos, swaps)
- blocking: which pairs are compared
- fellegi_sunter: m/u weights estimated by EM; bands: link / review / new, with safety rules
- matcher: one record against an index, or whole record sets (batch)
- survivorship: the golden record; store: link, merge, unmerge with history (PostgreSQL)
- cli: `python -m imaging_common.empi dedupe|link|estimate` for legacy CSV files
"""

from pathlib import Path

from imaging_common.empi.bands import Band, Thresholds
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.identifiers import Identifier, IdType, InvalidIdentifier, mask, parse_resident_id
from imaging_common.empi.matcher import MatchIndex, ScoredPair, Scorer, dedupe, link_sets
from imaging_common.empi.record import MatchRecord

# The EMPI tables, migrated in the schema of the service holding the index (ServiceSpec.library_migrations).
MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = [
    "MIGRATIONS",
    "Band", "FellegiSunterModel", "IdType", "Identifier", "InvalidIdentifier", "MatchIndex", "MatchRecord",
    "ScoredPair", "Scorer", "Thresholds", "dedupe", "link_sets", "mask", "parse_resident_id",
]
