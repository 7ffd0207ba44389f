from exporter.cli import main

raise SystemExit(main())  # noqa: E702
