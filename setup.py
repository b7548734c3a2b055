"""Build hook: the screens' message catalogs (ui/translations/*/LC_MESSAGES/
messages.po) are compiled to .mo files whenever the package is built, so a
wheel, an sdist install and an editable install all carry them. Everything
else about the package is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        source = Path(self.get_package_dir("crmkit.ui"), "translations")
        # An editable install reads the source tree; a wheel gets the files in build_lib.
        target = source if self.editable_mode else Path(self.build_lib, "crmkit", "ui", "translations")
        for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
            mo = target / po.relative_to(source).with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as file:
                catalog = read_po(file, locale=po.parent.parent.name)
            with mo.open("wb") as file:
                write_mo(file, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
