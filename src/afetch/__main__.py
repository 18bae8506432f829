from afetch.cli import main

raise SystemExit(main())
