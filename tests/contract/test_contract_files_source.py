"""The source contract suite against the `files` source: its "sandbox" is a folder of CSV files."""

from threadline_files import FilesSource

from threadline.testing import SourceContract


def people(first_id, n):
    return [{"id": i, "email": f"person{i}@example.com", "signup": f"2024-01-{i % 28 + 1:02d}"}
            for i in range(first_id, first_id + n)]


class TestFilesSource(SourceContract):
    source = FilesSource
    sandbox = None  # a FolderSandbox: a temporary folder the suite hands to prepare() and config()
    bad_config = {"streams[0].path": "no_such_file_*.csv"}

    def prepare(self, folder):
        for n in range(3):
            folder.write(f"customers_{n}.csv", people(n * 10, 10))

    def config(self, folder):
        return {"base_dir": str(folder.path),
                "streams": [{"name": "customers", "path": "customers_*.csv", "primary_key": ["id"]}]}

    def change(self, folder):
        folder.write("customers_3.csv", people(30, 5))
        return {"customers": folder.files["customers_3.csv"]}
