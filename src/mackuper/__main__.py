from mackuper.cli import main

raise SystemExit(main())
