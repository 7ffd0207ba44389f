"""DEFINER clauses become CURRENT_USER so that no account needs SET USER; data is never touched."""

from __future__ import annotations

from stackmedic.jobs.definer import DefinerRewriter, rewrite

DUMP = b"""/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`127.0.0.1`*/ /*!50003 TRIGGER t BEFORE INSERT ON visits
/*!50106 CREATE*/ /*!50117 DEFINER=`app``x`@`%`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `visits_of`(IN owner INT UNSIGNED)
/*!50013 DEFINER=`root`@`127.0.0.1` SQL SECURITY DEFINER */
INSERT INTO `notes` VALUES (1,'DEFINER=`root`@`localhost` is text'),(2,'x');
"""


def test_each_statement_definer_becomes_current_user_and_data_stays():
    out = rewrite(DUMP).decode()
    lines = out.splitlines()
    assert lines[0].startswith("/*!50003 CREATE*/ /*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER t")
    assert lines[1].startswith("/*!50106 CREATE*/ /*!50117 DEFINER=CURRENT_USER*/ /*!50106 EVENT")
    assert lines[2] == "CREATE DEFINER=CURRENT_USER PROCEDURE `visits_of`(IN owner INT UNSIGNED)"
    assert lines[3] == "/*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER */"
    assert lines[4] == "INSERT INTO `notes` VALUES (1,'DEFINER=`root`@`localhost` is text'),(2,'x');"


def test_chunks_split_anywhere_give_the_same_result():
    whole = rewrite(DUMP)
    for size in (1, 7, 40, 1000):
        r = DefinerRewriter()
        out = b"".join(r.feed(DUMP[i : i + size]) for i in range(0, len(DUMP), size)) + r.flush()
        assert out == whole, size
